"""Scenario files: the pydantic schema, defaults, loading and `--set` overrides.

The dotted keys of this schema (`population.users`, `strategies.poll_interval`,
`tiers.gateway.servers`) are a public interface: scripts and CI jobs address
them, so they stay stable.
"""

import copy
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from sim.errors import PresenceSimError
from sim.units import parse_duration

Seconds = Annotated[float, BeforeValidator(parse_duration), Field(ge=0)]
PositiveSeconds = Annotated[float, BeforeValidator(parse_duration), Field(gt=0)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LengthDistribution(_Section):
    """Random lengths of time: sessions, offline gaps, service times."""

    distribution: Literal["fixed", "exponential", "lognormal"] = "exponential"
    mean: PositiveSeconds
    cv: float = Field(1.0, gt=0, description="coefficient of variation (lognormal)")

    @model_validator(mode="before")
    @classmethod
    def _bare_duration_is_fixed(cls, value: Any) -> Any:
        # `deliver: 20us` is shorthand for a fixed length.
        if isinstance(value, str | int | float) and not isinstance(value, bool):
            return {"distribution": "fixed", "mean": value}
        return value


def _with_default_mean(seconds: float) -> Any:
    """A validator giving a length distribution a default mean when a
    section names only its shape (e.g. `{distribution: lognormal, cv: 2}`)."""

    def fill(value: Any) -> Any:
        if isinstance(value, dict) and "mean" not in value:
            return {**value, "mean": seconds}
        return value

    return BeforeValidator(fill)


class Population(_Section):
    users: int = Field(20_000, ge=2, le=2_000_000_000)
    online_fraction: float = Field(0.2, gt=0, lt=1, allow_inf_nan=False)
    session: Annotated[LengthDistribution, _with_default_mean(1800.0)] = (
        LengthDistribution(mean=1800.0)
    )
    start: Literal["steady", "empty"] = Field(
        "steady",
        description="steady: the online fraction holds from time 0; "
        "empty: everyone starts offline (use a warm-up)",
    )


class DegreeDistribution(_Section):
    """How many friends each user adds (the out-degree)."""

    distribution: Literal["fixed", "poisson", "lognormal"] = "fixed"
    mean: float = Field(200.0, gt=0)
    cv: float = Field(1.0, gt=0, description="coefficient of variation (lognormal)")


class SyntheticGraph(_Section):
    kind: Literal["synthetic"] = "synthetic"
    out_degree: DegreeDistribution = DegreeDistribution()


class EdgeListGraph(_Section):
    """A real friend graph read from an edge list, `src dst` per line."""

    kind: Literal["edge_list"]
    path: str
    directed: bool = True
    delimiter: Literal["whitespace", "comma", "tab"] = "whitespace"


class SyntheticGroups(_Section):
    kind: Literal["synthetic"] = "synthetic"
    groups_per_user: int = Field(20, ge=0)
    group_size: int = Field(200, ge=2)


class MembershipGroups(_Section):
    """Group memberships read from a file.

    `pairs`: one `node group` pair per line. `lines`: one group per line, its
    members separated by the delimiter, after `skip_fields` leading fields that
    name the group.
    """

    kind: Literal["file"]
    path: str
    format: Literal["pairs", "lines"] = "pairs"
    delimiter: Literal["whitespace", "comma", "tab"] = "whitespace"
    skip_fields: int = Field(0, ge=0)


class NoGroups(_Section):
    kind: Literal["none"]


class SwitchWeights(_Section):
    """Relative chances of the status a user switches to during a session."""

    online: float = Field(0.4, ge=0)
    away: float = Field(0.3, ge=0)
    busy: float = Field(0.2, ge=0)
    invisible: float = Field(0.1, ge=0)

    @model_validator(mode="after")
    def _some_weight(self) -> "SwitchWeights":
        if self.online + self.away + self.busy + self.invisible <= 0:
            raise ValueError("at least one status needs a positive weight")
        return self


class Behaviour(_Section):
    group_visits_per_hour: float = Field(
        2.0, ge=0, description="group openings per online hour of a user"
    )
    group_visit_duration: Annotated[LengthDistribution, _with_default_mean(120.0)] = (
        LengthDistribution(mean=120.0)
    )
    status_switches_per_hour: float = Field(
        0.0, ge=0, description="online/away/busy/invisible switches per online hour"
    )
    switch_to: SwitchWeights = SwitchWeights()
    invisible_login_share: float = Field(
        0.0, ge=0, le=1, description="share of logins made in invisible mode"
    )
    abrupt_disconnect_share: float = Field(
        0.0, ge=0, le=1, description="share of sessions ending without logout"
    )


class Heartbeat(_Section):
    """Clients send a heartbeat every `interval`; the server declares a client
    offline when it has heard nothing for `timeout`."""

    interval: PositiveSeconds = 30.0
    timeout: PositiveSeconds = 90.0

    @model_validator(mode="after")
    def _timeout_covers_interval(self) -> "Heartbeat":
        if self.timeout < self.interval:
            raise ValueError(
                "heartbeat.timeout must be at least heartbeat.interval, or every "
                "session would time out between two heartbeats"
            )
        return self


FriendStrategy = Literal["push", "poll"]
GroupStrategy = Literal["push", "push_dedup", "poll", "lazy_pull"]


class Strategies(_Section):
    friends: list[FriendStrategy] = ["push", "poll"]
    groups: list[GroupStrategy] = ["push", "lazy_pull"]
    poll_interval: PositiveSeconds = 60.0
    group_poll_interval: PositiveSeconds = 60.0
    group_refresh_interval: Seconds = Field(
        0.0, description="lazy pull: re-pull an open group this often (0: never)"
    )
    member_list_ttl: Seconds = Field(
        0.0, description="lazy pull: keep a loaded member list this long (0: never)"
    )

    @model_validator(mode="after")
    def _no_repeats(self) -> "Strategies":
        for audience in ("friends", "groups"):
            chosen = getattr(self, audience)
            if len(set(chosen)) != len(chosen):
                raise ValueError(f"strategies.{audience} lists a strategy twice")
        return self


def _fixed(seconds: float) -> LengthDistribution:
    return LengthDistribution(distribution="fixed", mean=seconds)


class GatewayTier(_Section):
    """Holds client connections; delivers pushes, receives requests and
    heartbeats."""

    servers: int = Field(4, ge=1, le=100_000)
    workers: int = Field(8, ge=1, le=10_000)
    deliver: LengthDistribution = _fixed(20e-6)
    request: LengthDistribution = _fixed(50e-6)
    heartbeat: LengthDistribution = _fixed(10e-6)


class PresenceTier(_Section):
    """Applies status changes, computes fan-outs, answers polls and pulls."""

    servers: int = Field(2, ge=1, le=100_000)
    workers: int = Field(8, ge=1, le=10_000)
    change: LengthDistribution = _fixed(200e-6)
    login: LengthDistribution = _fixed(300e-6)
    poll: LengthDistribution = _fixed(300e-6)
    pull: LengthDistribution = _fixed(300e-6)


class CacheTier(_Section):
    """Every user's status, sharded by user: `set` writes one status, `get`
    reads one key (a batch read costs one `get` per key)."""

    servers: int = Field(4, ge=1, le=100_000)
    workers: int = Field(4, ge=1, le=10_000)
    set: LengthDistribution = _fixed(20e-6)
    get: LengthDistribution = _fixed(2e-6)


class DbTier(_Section):
    """Friend lists and group member lists."""

    servers: int = Field(2, ge=1, le=100_000)
    workers: int = Field(8, ge=1, le=10_000)
    friends: LengthDistribution = _fixed(1e-3)
    members: LengthDistribution = _fixed(1e-3)


class Tiers(_Section):
    gateway: GatewayTier = GatewayTier()
    presence: PresenceTier = PresenceTier()
    cache: CacheTier = CacheTier()
    db: DbTier = DbTier()


class Network(_Section):
    hop_delay: Seconds = 1e-3


class MessageSizes(_Section):
    """Bytes on the wire: every message has a header, plus one entry per
    status it carries."""

    header_bytes: int = Field(40, ge=0)
    status_bytes: int = Field(16, ge=0)
    system_bytes: int = Field(512, ge=0)


class GatewayCrash(_Section):
    """A gateway server fails at `at`: its clients' sessions drop, the server
    notices `detect_after` later, and clients reconnect within the jitter."""

    kind: Literal["gateway_crash"]
    at: Seconds
    server: int = Field(0, ge=0)
    reconnect_jitter: Seconds = 30.0
    detect_after: Seconds = 0.0


class Slowdown(_Section):
    """Service times of one tier multiplied by `factor` over [start, end)."""

    kind: Literal["slowdown"]
    tier: Literal["gateway", "presence", "cache", "db"]
    start: Seconds
    end: Seconds
    factor: float = Field(gt=0)

    @model_validator(mode="after")
    def _ordered(self) -> "Slowdown":
        if self.end <= self.start:
            raise ValueError("a slowdown's end must come after its start")
        return self


Fault = Annotated[GatewayCrash | Slowdown, Field(discriminator="kind")]


class SystemMessage(_Section):
    """A broadcast (system message or splash ad) sent at `at`, kept for
    `expires`; both delivery modes are simulated on the same workload."""

    at: Seconds
    expires: PositiveSeconds = 3600.0


class Metrics(_Section):
    slot: PositiveSeconds = Field(1.0, description="width of a load time-series slot")
    staleness_pairs: int = Field(
        2000, ge=0, description="observer-friend pairs sampled for staleness"
    )


OptionalSeconds = Annotated[
    float | None, BeforeValidator(lambda v: None if v is None else parse_duration(v))
]


class Slo(_Section):
    """Service-level objectives a capacity plan must meet; `null` switches one
    off.

    `utilisation` bounds every tier's share of busy worker time over the
    busiest `peak_window`; `propagation_p99` the time from a change to an
    observer's view (for strategies that send changes); `login_p99` the time
    from a login to a consistent view; `wait_p99` the queueing wait of a job
    at any one tier.
    """

    utilisation: float = Field(0.7, gt=0, lt=1, allow_inf_nan=False)
    peak_window: PositiveSeconds = 60.0
    propagation_p99: OptionalSeconds = Field(1.0, gt=0)
    login_p99: OptionalSeconds = Field(2.0, gt=0)
    wait_p99: OptionalSeconds = Field(None, gt=0)


class Capacity(_Section):
    """How `presence-sim plan` sizes the tiers: for `target_users`, from a
    simulation of `simulated_users` (default: the population, at most
    100,000), with at most `runs` simulations in the search."""

    target_users: int | None = Field(None, ge=2, le=100_000_000_000)
    simulated_users: int | None = Field(None, ge=2, le=2_000_000_000)
    runs: int = Field(4, ge=1, le=20)


class Scenario(_Section):
    """Everything one run needs, with the defaults of the reference article."""

    name: str = Field(min_length=1, max_length=200)
    description: str = ""
    seed: int = Field(1, ge=0)
    duration: PositiveSeconds = 3600.0
    warmup: Seconds = Field(
        0.0, description="simulated but not counted: metrics start after it"
    )
    population: Population = Population()
    graph: Annotated[SyntheticGraph | EdgeListGraph, Field(discriminator="kind")] = (
        SyntheticGraph()
    )
    groups: Annotated[
        SyntheticGroups | MembershipGroups | NoGroups, Field(discriminator="kind")
    ] = SyntheticGroups()
    behaviour: Behaviour = Behaviour()
    strategies: Strategies = Strategies()
    heartbeat: Heartbeat = Heartbeat()
    tiers: Tiers = Tiers()
    network: Network = Network()
    messages: MessageSizes = MessageSizes()
    faults: list[Fault] = []
    system_messages: list[SystemMessage] = []
    metrics: Metrics = Metrics()
    replications: int = Field(
        1, ge=1, description="independent runs, each with its own random streams"
    )
    sweep: dict[str, list[Any]] = Field(
        default_factory=dict,
        description="dotted scenario key -> values; `presence-sim sweep` runs "
        "every combination",
    )
    slo: Slo = Slo()
    capacity: Capacity = Capacity()

    @field_validator("sweep")
    @classmethod
    def _sweep_is_a_grid(cls, sweep: dict[str, list[Any]]) -> dict[str, list[Any]]:
        for key, values in sweep.items():
            if key.split(".")[0] in ("sweep", "replications"):
                raise ValueError(
                    f"'{key}' cannot be swept; sweep scenario keys such as "
                    "strategies.poll_interval"
                )
            if not values:
                raise ValueError(f"'{key}' has no values; list at least one")
        return sweep

    @model_validator(mode="before")
    @classmethod
    def _default_kinds(cls, value: Any) -> Any:
        # A graph or groups section without `kind` is the synthetic one.
        if isinstance(value, dict):
            for section in ("graph", "groups"):
                if isinstance(value.get(section), dict):
                    value[section] = {"kind": "synthetic", **value[section]}
        return value

    @field_validator("name")
    @classmethod
    def _printable_name(cls, name: str) -> str:
        if any(ord(c) < 32 or ord(c) == 127 for c in name):
            raise ValueError("must not contain line breaks or control characters")
        return name

    @model_validator(mode="after")
    def _something_to_compare(self) -> "Scenario":
        chosen = self.strategies.friends or self.strategies.groups
        if not chosen and not self.system_messages:
            raise ValueError(
                "strategies: choose at least one strategy in strategies.friends "
                "(push, poll) or strategies.groups (push, push_dedup, poll, "
                "lazy_pull), or add system_messages"
            )
        return self

    @model_validator(mode="after")
    def _poll_not_faster_than_slot(self) -> "Scenario":
        if self.strategies.poll_interval < self.metrics.slot:
            raise ValueError(
                "strategies.poll_interval must be at least metrics.slot "
                f"({self.metrics.slot:g} s); polls are computed per slot"
            )
        if self.warmup >= self.duration:
            raise ValueError("warmup must be shorter than duration")
        if self.slo.peak_window < self.metrics.slot:
            raise ValueError(
                "slo.peak_window must be at least metrics.slot "
                f"({self.metrics.slot:g} s); the busiest window is made of slots"
            )
        for index, fault in enumerate(self.faults):
            begins = fault.at if isinstance(fault, GatewayCrash) else fault.start
            field = "at" if isinstance(fault, GatewayCrash) else "start"
            if begins >= self.duration:
                raise ValueError(
                    f"faults.{index}.{field} must come before the end of the run "
                    f"(duration {self.duration:g} s)"
                )
        for index, message in enumerate(self.system_messages):
            if message.at >= self.duration:
                raise ValueError(
                    f"system_messages.{index}.at must come before the end of the "
                    f"run (duration {self.duration:g} s)"
                )
        for index, fault in enumerate(self.faults):
            if isinstance(fault, GatewayCrash) and (
                fault.server >= self.tiers.gateway.servers
            ):
                raise ValueError(
                    f"faults.{index}.server: gateway servers are numbered 0.."
                    f"{self.tiers.gateway.servers - 1}"
                )
        return self

    @property
    def slug(self) -> str:
        """The name made safe for a folder name."""
        slug = re.sub(r"[^\w.-]+", "-", self.name).strip("-.")[:80]
        return slug or "scenario"


def load_scenario(path: str | Path, overrides: list[str] | None = None) -> Scenario:
    """Read, override and validate a scenario file.

    Relative data paths in the file are taken relative to the file's folder.
    """
    path = Path(path)
    raw = _read_yaml(path)
    raw.setdefault("name", path.stem)
    raw = apply_overrides(raw, overrides or [])
    scenario = parse_scenario(raw, source=str(path))
    return _resolve_paths(scenario, path.parent)


def parse_scenario(raw: dict[str, Any], source: str = "scenario") -> Scenario:
    """Validate a mapping, turning schema errors into one readable message."""
    try:
        return Scenario.model_validate(raw)
    except ValidationError as exc:
        lines = [_describe(error) for error in exc.errors()]
        message = f"{source}: invalid scenario\n  " + "\n  ".join(lines)
        raise PresenceSimError(message) from None


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply `dotted.key=value` overrides; values are read as YAML scalars."""
    raw = copy.deepcopy(raw)
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise PresenceSimError(
                f"--set {item!r}: expected KEY=VALUE, e.g. population.users=20000"
            )
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError:
            raise PresenceSimError(
                f"--set {key}: value {text!r} is not valid YAML"
            ) from None
        target: Any = raw
        parts = key.strip().split(".")
        for depth, part in enumerate(parts):
            last = depth == len(parts) - 1
            if isinstance(target, list):
                # A list is entered by position: faults.0.at=5m.
                if not part.isdigit() or int(part) >= len(target):
                    where = ".".join(parts[:depth])
                    positions = (
                        f"use a position 0..{len(target) - 1}, or "
                        if target
                        else "it is empty; "
                    )
                    raise PresenceSimError(
                        f"--set {key}: '{where}' is a list; {positions}replace the "
                        f"whole list, e.g. --set '{where}=[...]'"
                    )
                if last:
                    target[int(part)] = value
                else:
                    target = target[int(part)]
                continue
            if not isinstance(target, dict):
                raise PresenceSimError(
                    f"--set {key}: '{'.'.join(parts[:depth])}' holds a value, "
                    "not a section"
                )
            if last:
                target[part] = value
            elif parts[depth + 1].isdigit() and part not in target:
                # A position in a list the file does not have yet.
                target = target.setdefault(part, [])
            else:
                target = target.setdefault(part, {})
    return raw


def _read_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise PresenceSimError(f"{path}: scenario file not found")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise PresenceSimError(
            f"{path}: not a text file; a scenario is YAML in UTF-8"
        ) from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "syntax error"
        raise PresenceSimError(f"{path}: YAML syntax error{where}: {problem}") from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise PresenceSimError(f"{path}: a scenario must be a mapping of sections")
    return raw


def _resolve_paths(scenario: Scenario, base: Path) -> Scenario:
    updates: dict[str, Any] = {}
    for field in ("graph", "groups"):
        section = getattr(scenario, field)
        data_path = getattr(section, "path", None)
        if data_path is None:
            continue
        resolved = Path(data_path).expanduser()
        if not resolved.is_absolute():
            resolved = (base / resolved).resolve()
        if not resolved.is_file():
            raise PresenceSimError(f"{field}.path: data file {resolved} not found")
        updates[field] = section.model_copy(update={"path": str(resolved)})
    return scenario.model_copy(update=updates) if updates else scenario


def _describe(error: dict[str, Any]) -> str:
    """One line per schema error: the dotted field, then what is wrong."""
    loc = [str(part) for part in error["loc"]]
    field = ".".join(_strip_union_tags(loc)) or "(top level)"
    if error["type"] == "extra_forbidden":
        valid = _valid_fields(loc[:-1])
        hint = f"; valid fields here: {', '.join(valid)}" if valid else ""
        return f"{field}: unknown field{hint}"
    message = error["msg"]
    if error["type"] in ("model_type", "model_attributes_type", "dict_type"):
        valid = _valid_fields(loc)
        hint = f" (fields: {', '.join(valid)})" if valid else ""
        return f"{field}: expected a section of fields{hint}, not {error['input']!r}"
    if error["type"] == "union_tag_invalid" or error["type"] == "union_tag_not_found":
        return f"{field}: kind must be one of {error['ctx'].get('expected_tags', '')}"
    if message.startswith("Value error, "):
        message = message[len("Value error, ") :]
    if not loc:
        # Checks across sections name their fields in the message itself.
        return message
    return f"{field}: {message}"


def _strip_union_tags(loc: list[str]) -> list[str]:
    # Discriminated unions add the tag (`synthetic`) to the location.
    tags = {"synthetic", "edge_list", "file", "none", "gateway_crash", "slowdown"}
    return [part for i, part in enumerate(loc) if not (i > 0 and part in tags)]


def _valid_fields(loc: list[str]) -> list[str]:
    model: Any = Scenario
    for part in loc:
        if part.isdigit():
            continue
        if isinstance(model, type) and issubclass(model, BaseModel):
            field = model.model_fields.get(part)
            if field is None:
                return []
            model = field.annotation
            continue
        members = getattr(model, "__args__", ())
        chosen = [m for m in _flatten(members) if _tag_of(m) == part] or [
            m for m in _flatten(members) if isinstance(m, type)
        ]
        model = chosen[0] if chosen else None
        if model is None:
            return []
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        for member in _flatten(getattr(model, "__args__", ())):
            if isinstance(member, type) and issubclass(member, BaseModel):
                model = member
                break
        else:
            return []
    return list(model.model_fields)


def _flatten(members: tuple[Any, ...]) -> list[Any]:
    flat: list[Any] = []
    for member in members:
        inner = getattr(member, "__args__", None)
        if inner and not (isinstance(member, type) and issubclass(member, BaseModel)):
            flat.extend(_flatten(inner))
        else:
            flat.append(member)
    return flat


def _tag_of(member: Any) -> str | None:
    if isinstance(member, type) and issubclass(member, BaseModel):
        kind = member.model_fields.get("kind")
        if kind is not None:
            tags = getattr(kind.annotation, "__args__", ())
            return tags[0] if tags else None
    return None
