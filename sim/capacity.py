"""Capacity planning: the fewest servers per tier that meet a scenario's SLOs
at a target population, found by formula and confirmed by simulation.

The plan runs in three steps:

1. **Formula.** `sim.analytic` predicts each tier's load at the target size;
   the first guess per strategy and tier is the fewest servers whose
   predicted utilisation, and p99 wait by Erlang C, meet the SLOs.
2. **Scale model.** A simulation of the target's millions of users is out of
   reach, so a smaller population stands in for it with per-user load held
   constant and servers scaled with it. With k = target / simulated users,
   every simulated user stands for k users; the simulated tiers keep the
   target's server counts but every service time and network hop is k times
   longer. Each simulated server is then exactly as busy as a target server
   (k times fewer jobs, each k times longer) and, as the whole server network
   runs in slow motion, its waits and latencies are k times the target's.
   Fan-outs keep their size, and as the server counts are the target's, so
   does the share of a fan-out each server gets.
3. **Search.** Utilisation is inversely proportional to the server count (the
   work does not change), so one run gives each tier's exact lower bound;
   the latency objectives are checked run by run, raising a tier that fails
   and halving the gap to the lower bound while one passes, within a bounded
   number of runs.

Limitation: work timed by the load slots (polls and heartbeats, computed per
one-second slot) is not slowed with the servers, so in the scale model it
arrives in k times smaller batches: the model sees it spread out, as clients
at their own phases would send it, where a full-size run queues it at the
start of each slot; and the request chains of a poll, slowed k times, reach
into the next slots and queue ahead of them, which overstates poll waits at
the gateway.
Limitation: a gateway crash drops the share of sessions the scenario's own
gateway count gives, whatever count the plan tries.
"""

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from sim.analytic import Estimate, GraphProfile, estimate, scenario_profile
from sim.errors import PresenceSimError
from sim.experiment import TIER_NAMES, Run, build_tiers
from sim.graph import build_graph
from sim.metrics import LogHistogram
from sim.model import Progress
from sim.protocol import Strategy
from sim.randomness import stream
from sim.scenario import LengthDistribution, Scenario, SyntheticGraph
from sim.tiers import Tier

log = logging.getLogger(__name__)

# The largest population a plan simulates unless told otherwise.
DEFAULT_SIMULATED_USERS = 100_000
# The schema's ceiling on servers per tier.
MAX_SERVERS = 100_000
# A failing tier grows by at least this factor when its lower bound is not
# known exactly (a wait or latency objective, not utilisation).
GROWTH = 1.25
# Fewer simulated users per server than this make per-server arrivals lumpy.
THIN_USERS_PER_SERVER = 20

Key = tuple[str, str]


@dataclass(frozen=True)
class PlanSettings:
    """How big the target is and how the plan simulates it."""

    target_users: int
    simulated_users: int
    runs: int

    @property
    def scale(self) -> float:
        """k: target users per simulated user."""
        return self.target_users / self.simulated_users


def plan_settings(
    scenario: Scenario,
    target_users: int | None = None,
    simulated_users: int | None = None,
) -> PlanSettings:
    """The settings from the command line, else from `capacity` in the
    scenario; a graph read from files fixes the simulated population, and is
    read to count its users."""
    capacity = scenario.capacity
    target = target_users if target_users is not None else capacity.target_users
    if target is None:
        raise PresenceSimError(
            "capacity.target_users: give the population to plan for, with "
            "--target-users N or capacity.target_users in the scenario"
        )
    if not 2 <= target <= 100_000_000_000:
        raise PresenceSimError(
            f"--target-users: {target:,} is out of range; plan for 2 to "
            "100,000,000,000 users"
        )
    simulated = (
        simulated_users if simulated_users is not None else capacity.simulated_users
    )
    if not isinstance(scenario.graph, SyntheticGraph):
        graph_users = build_graph(
            scenario, stream(scenario.seed, "graph"), stream(scenario.seed, "groups")
        ).users
        if simulated is not None and simulated != graph_users:
            raise PresenceSimError(
                "capacity.simulated_users: the scenario's graph comes from a file, "
                f"which decides the simulated population ({graph_users:,} users); "
                "leave it out"
            )
        simulated = graph_users
    elif simulated is None:
        simulated = min(scenario.population.users, DEFAULT_SIMULATED_USERS)
    if simulated < 2:
        raise PresenceSimError(
            "capacity.simulated_users: simulate at least 2 users, e.g. 20000"
        )
    return PlanSettings(target, simulated, capacity.runs)


# --- The scale model ---------------------------------------------------------


def _slowed(spec: Any, factor: float) -> Any:
    """A tier's settings with every service time `factor` times longer."""
    longer = {
        op: value.model_copy(update={"mean": value.mean * factor})
        for op, value in spec
        if isinstance(value, LengthDistribution)
    }
    return spec.model_copy(update=longer)


def scale_model(scenario: Scenario, settings: PlanSettings) -> Scenario:
    """The scenario as the plan simulates it: the simulated population, with
    service times and network hops k times longer."""
    k = settings.scale
    tiers = scenario.tiers.model_copy(
        update={name: _slowed(getattr(scenario.tiers, name), k) for name in TIER_NAMES}
    )
    update: dict[str, Any] = {
        "tiers": tiers,
        "network": scenario.network.model_copy(
            update={"hop_delay": scenario.network.hop_delay * k}
        ),
    }
    if isinstance(scenario.graph, SyntheticGraph):
        update["population"] = scenario.population.model_copy(
            update={"users": settings.simulated_users}
        )
    return scenario.model_copy(update=update)


def at_size(scenario: Scenario, users: int) -> Scenario:
    """The scenario with a synthetic population of `users`."""
    if not isinstance(scenario.graph, SyntheticGraph):
        return scenario
    return scenario.model_copy(
        update={"population": scenario.population.model_copy(update={"users": users})}
    )


def with_servers(scenario: Scenario, servers: dict[str, int]) -> Scenario:
    """The scenario with the given server count per tier."""
    tiers = scenario.tiers.model_copy(
        update={
            name: getattr(scenario.tiers, name).model_copy(update={"servers": count})
            for name, count in servers.items()
        }
    )
    return scenario.model_copy(update={"tiers": tiers})


class ScaledRun(Run):
    """A run of the scale model in which each strategy has its own server
    count per tier, asked of `servers_for(run, key)` as the run is built."""

    def __init__(
        self, scenario: Scenario, servers_for: Callable[[Run, Key], dict[str, int]]
    ) -> None:
        self.servers_for = servers_for
        super().__init__(scenario)

    def tiers_for(self, key: Key) -> dict[str, Tier]:
        counts = self.servers_for(self, key)
        return build_tiers(with_servers(self.scenario, counts))


# --- Reading a run in target terms -------------------------------------------


@dataclass(frozen=True)
class TierReading:
    """One tier of one strategy in one run, in target terms."""

    servers: int
    workers: int
    utilisation_mean: float
    utilisation_peak: float
    wait_p99: float
    jobs_per_s: float


@dataclass(frozen=True)
class StrategyReading:
    """One strategy in one run, in target terms.

    `latency_p99` is the p99 propagation latency; `latency_by_servers` says
    whether servers make it (a push) or a clock does (a poll's interval).
    """

    tiers: dict[str, TierReading]
    latency_p99: float
    latency_by_servers: bool
    login_p99: float
    n_mean: float
    messages_per_s: float
    peak_messages_per_s: float
    bytes_per_s: float


def _window_peak(series: np.ndarray, width: int) -> float:
    """The largest mean of `width` consecutive values (all of them if fewer)."""
    if len(series) == 0:
        return 0.0
    width = min(width, len(series))
    sums = np.cumsum(np.concatenate([[0.0], series]))
    return float((sums[width:] - sums[:-width]).max() / width)


def _quantile(histogram: LogHistogram, q: float) -> float:
    """A histogram's quantile, with values under its resolution read as 0."""
    value = histogram.quantile(q)
    if math.isnan(value) or value <= histogram.low * 1.1:
        return 0.0
    return value


def combined_waits(tier: Tier) -> LogHistogram:
    """Every operation's waits at a tier in one histogram."""
    merged = LogHistogram()
    for stats in tier.ops.values():
        merged.add_counts(stats.waits)
    return merged


class Reader:
    """Turns a finished scale-model run into target figures.

    Peaks: the busiest `slo.peak_window` of a run is k times fewer users'
    load than the target's, so its excess over the mean is sqrt(k) times too
    large for fluctuations of independent users; it is shrunk by sqrt(k).
    Faults and system messages make surges every user takes part in, which
    grow with the population as the mean does, so a scenario with either
    keeps its simulated excess.
    """

    def __init__(self, scenario: Scenario, settings: PlanSettings) -> None:
        self.scenario = scenario
        self.k = settings.scale
        slot = scenario.metrics.slot
        self.first = int(scenario.warmup / slot)
        self.width = max(1, round(scenario.slo.peak_window / slot))
        self.window = scenario.duration - scenario.warmup
        self.surges = bool(scenario.faults or scenario.system_messages)
        self.excess = 1.0 if self.surges else 1.0 / math.sqrt(self.k)

    def peak(self, series: np.ndarray) -> tuple[float, float]:
        """Mean and target peak of a per-slot series after the warm-up.

        The last slot also holds the jobs that reach a tier after the end of
        the run (the tails of request chains started before it), so it is
        left out.
        """
        counted = series[self.first : max(self.first + 1, len(series) - 1)]
        mean = float(counted.mean()) if len(counted) else 0.0
        return mean, mean + (_window_peak(counted, self.width) - mean) * self.excess

    def tier(self, tier: Tier) -> TierReading:
        slot = self.scenario.metrics.slot
        capacity = tier.servers * tier.workers * slot
        mean, peak = self.peak(tier.slot_busy / capacity)
        return TierReading(
            tier.servers,
            tier.workers,
            float(mean),
            float(peak),
            _quantile(combined_waits(tier), 0.99) / self.k,
            tier.jobs / self.window * self.k,
        )

    def strategy(self, strategy: Strategy) -> StrategyReading:
        metrics = strategy.metrics
        by_servers = strategy.name in ("push", "push_dedup")
        latency = math.nan
        if strategy.audience != "system" and metrics.latency.count:
            latency = metrics.latency.quantile(0.99)
            latency = latency / self.k if by_servers else latency
        n = metrics.n.values()
        delivered = strategy.tiers["gateway"].op_arrivals["deliver"]
        slot = self.scenario.metrics.slot
        mean, peak = self.peak(delivered / slot)
        return StrategyReading(
            {name: self.tier(tier) for name, tier in strategy.tiers.items()},
            float(latency),
            by_servers,
            float(metrics.login.quantile(0.99)) / self.k
            if metrics.login.count
            else math.nan,
            float(n.mean()) if len(n) else math.nan,
            mean * self.k,
            peak * self.k,
            metrics.bytes / self.window * self.k,
        )


# --- Objectives --------------------------------------------------------------


@dataclass
class Verdict:
    """How one strategy's reading meets the SLOs.

    `tier_misses` names, per tier, the objectives it misses itself
    (utilisation, wait); `misses` the strategy's own (propagation, login);
    `blamed` the tier whose waits a missed latency objective is put on, and
    `unreachable` the objectives no server count can meet. `excess` says, per
    tier that missed a latency objective, by what factor the figure exceeds
    it.
    """

    tier_misses: dict[str, list[str]] = field(default_factory=dict)
    misses: list[str] = field(default_factory=list)
    blamed: str | None = None
    unreachable: list[str] = field(default_factory=list)
    excess: dict[str, float] = field(default_factory=dict)

    def growth(self, tier: str) -> float:
        """How much to raise a tier that missed a latency objective: by the
        factor it was missed by, between 1.25 and 2."""
        return min(2.0, max(GROWTH, self.excess.get(tier, GROWTH)))

    @property
    def met(self) -> bool:
        return not self.misses and not any(self.tier_misses.values())

    @property
    def searchable_met(self) -> bool:
        """Met, leaving aside what no server count changes."""
        reachable = [miss for miss in self.misses if miss not in self.unreachable]
        return not reachable and not any(self.tier_misses.values())


def judge(reading: StrategyReading, scenario: Scenario) -> Verdict:
    """Check a reading against the scenario's SLOs."""
    slo = scenario.slo
    verdict = Verdict()
    for name, tier in reading.tiers.items():
        misses = []
        if tier.utilisation_peak > slo.utilisation:
            misses.append("utilisation")
        if slo.wait_p99 is not None and tier.wait_p99 > slo.wait_p99:
            misses.append("wait")
            verdict.excess[name] = tier.wait_p99 / slo.wait_p99
        verdict.tier_misses[name] = misses

    # Latency objectives of the strategy as a whole: the tier with the
    # longest waits gets the blame, unless removing every wait would still
    # leave the figure above its objective.
    total_wait = sum(tier.wait_p99 for tier in reading.tiers.values())
    worst = max(reading.tiers, key=lambda name: reading.tiers[name].wait_p99)
    objectives = [
        ("propagation", reading.latency_p99, slo.propagation_p99),
        ("login", reading.login_p99, slo.login_p99),
    ]
    for name, figure, bound in objectives:
        if bound is None or math.isnan(figure) or figure <= bound:
            continue
        verdict.misses.append(name)
        clock_made = name == "propagation" and not reading.latency_by_servers
        if clock_made or figure - total_wait > bound:
            verdict.unreachable.append(name)
        else:
            verdict.blamed = worst
            verdict.excess[worst] = max(verdict.excess.get(worst, 1.0), figure / bound)
    return verdict


# --- The search --------------------------------------------------------------


@dataclass
class Bracket:
    """What the search knows of one tier of one strategy: every count below
    `low` fails, `high` is the fewest seen to pass, `now` the next to run."""

    now: int
    low: int = 1
    high: int | None = None

    @property
    def settled(self) -> bool:
        return self.high is not None and self.high == self.low == self.now

    def update(
        self, failed: bool, passed: bool, bound: int, growth: float = GROWTH
    ) -> None:
        """Take in a run at `now`: `failed` when the tier itself missed an
        objective, `passed` when the whole strategy met them, `bound` the
        fewest servers its utilisation allows, `growth` how far to raise a
        tier that failed a latency objective."""
        self.low = max(self.low, bound)
        if failed:
            self.low = max(self.low, self.now + 1)
        if passed:
            self.high = self.now if self.high is None else min(self.high, self.now)
        if self.high is not None:
            # A count seen to pass stays possible, whatever a later run blamed.
            self.low = min(self.low, self.high)
        if self.high is not None:
            self.now = (self.low + self.high) // 2
        elif failed and self.low > bound:
            # A latency objective, with no exact bound: grow geometrically.
            self.now = max(self.low, math.ceil(self.now * growth))
        else:
            self.now = max(self.low, self.now)
        self.now = min(self.now, MAX_SERVERS)


def utilisation_need(utilisation: float, servers: int, limit: float) -> int:
    """The fewest servers keeping utilisation within `limit`, from its value
    at `servers`: the work does not change with the server count, so
    utilisation goes as 1/s."""
    return max(1, math.ceil(utilisation * servers / limit - 1e-9))


def utilisation_bound(reading: TierReading, limit: float) -> int:
    """The fewest servers keeping a tier's peak utilisation within `limit`."""
    return utilisation_need(reading.utilisation_peak, reading.servers, limit)


def formula_start(
    target: Scenario, profile: GraphProfile
) -> tuple[dict[Key, dict[str, int]], dict[str, int], Estimate]:
    """The first guess: per strategy and tier, the fewest servers whose
    predicted utilisation (a mean, not a peak) and, when the SLOs bound it,
    p99 wait by Erlang C meet the SLOs.

    Returns the guesses of the strategies with a formula, the guess for the
    others (the least any strategy with a formula needs, as all pay for
    logins, status writes and heartbeats) and the predictions themselves.
    """
    slo = target.slo
    base = estimate(target, profile)
    found: dict[Key, dict[str, int]] = {}
    for strategy in base.strategies:
        key = (strategy.audience, strategy.strategy)
        found[key] = {
            tier.tier: utilisation_need(tier.utilisation, tier.servers, slo.utilisation)
            for tier in strategy.tiers
        }

    # Waits fall as servers are added: per tier, search upwards from the
    # utilisation bound, one prediction serving every strategy.
    if slo.wait_p99 is not None and found:
        cache: dict[tuple[str, int], dict[Key, Any]] = {}

        def tiers_at(name: str, count: int) -> dict[Key, Any]:
            if (name, count) not in cache:
                predicted = estimate(with_servers(target, {name: count}), profile)
                cache[(name, count)] = {
                    (s.audience, s.strategy): next(t for t in s.tiers if t.tier == name)
                    for s in predicted.strategies
                }
            return cache[(name, count)]

        for key, counts in found.items():
            for name in counts:
                counts[name] = _first_passing(
                    counts[name],
                    lambda count, n=name, k=key: (
                        tiers_at(n, count)[k].wait_quantile(0.99) <= slo.wait_p99
                    ),
                )

    floor = {
        name: min((counts[name] for counts in found.values()), default=1)
        for name in TIER_NAMES
    }
    return found, floor, base


def _first_passing(low: int, passes: Callable[[int], bool]) -> int:
    """The smallest count from `low` up for which `passes` holds (monotone)."""
    if passes(low):
        return low
    high = low
    while not passes(high):
        if high >= MAX_SERVERS:
            return MAX_SERVERS
        low, high = high, min(MAX_SERVERS, high * 2)
    while high - low > 1:
        middle = (low + high) // 2
        if passes(middle):
            high = middle
        else:
            low = middle
    return high


@dataclass
class Trial:
    """One strategy in one run of the search."""

    run: int
    servers: dict[str, int]
    reading: StrategyReading
    verdict: Verdict


@dataclass
class Plan:
    """A finished plan: per strategy the servers chosen, whether a run
    confirmed them as the fewest, the trial that shows their figures (the
    last one when none confirmed them), and every trial of the search."""

    scenario: Scenario
    settings: PlanSettings
    servers: dict[Key, dict[str, int]]
    predicted: dict[Key, dict[str, int]]
    chosen: dict[Key, Trial]
    confirmed: dict[Key, bool]
    trials: list[tuple[Key, Trial]]
    estimate: Estimate
    runs: int
    wall_seconds: float = 0.0

    @property
    def keys(self) -> list[Key]:
        return list(self.servers)


class Search:
    """The state of a plan's search across its runs."""

    def __init__(self, scenario: Scenario, settings: PlanSettings) -> None:
        self.scenario = scenario
        self.settings = settings
        self.model = scale_model(scenario, settings)
        self.brackets: dict[Key, dict[str, Bracket]] = {}
        self.start: dict[Key, dict[str, int]] = {}
        self.found: dict[Key, dict[str, int]] = {}
        self.floor: dict[str, int] = {}
        self.estimate: Estimate | None = None
        self.trials: list[tuple[Key, Trial]] = []
        self.passing: dict[Key, Trial] = {}
        self.latest: dict[Key, Trial] = {}
        self.runs = 0

    def servers_for(self, run: Run, key: Key) -> dict[str, int]:
        """The counts to try for a strategy; in the first run, once it has
        built its graph, the formula's guesses."""
        if self.estimate is None:
            self._guess(run)
        if key not in self.brackets:
            self.start[key] = dict(self.found.get(key, self.floor))
            self.brackets[key] = {
                name: Bracket(now=count) for name, count in self.start[key].items()
            }
        return {name: bracket.now for name, bracket in self.brackets[key].items()}

    def _guess(self, run: Run) -> None:
        # The target is taken to have the simulated graph's degrees and
        # groups, as the scale model does.
        profile = scenario_profile(self.model, run.graph)
        profile = replace(profile, users=self.settings.target_users)
        target = at_size(self.scenario, self.settings.target_users)
        self.found, self.floor, self.estimate = formula_start(target, profile)

    @property
    def settled(self) -> bool:
        return bool(self.brackets) and all(
            bracket.settled
            for tiers in self.brackets.values()
            for bracket in tiers.values()
        )

    def take(self, run: Run) -> None:
        """Read a finished run and choose the counts of the next."""
        self.runs += 1
        reader = Reader(self.model, self.settings)
        limit = self.scenario.slo.utilisation
        for strategy in run.strategies:
            key = strategy.key
            servers = {name: tier.servers for name, tier in strategy.tiers.items()}
            reading = reader.strategy(strategy)
            verdict = judge(reading, self.scenario)
            self._shift_blame(verdict, reading, self.brackets[key])
            trial = Trial(self.runs, servers, reading, verdict)
            self.trials.append((key, trial))
            self.latest[key] = trial
            best = self.passing.get(key)
            if verdict.searchable_met and (
                best is None or sum(servers.values()) <= sum(best.servers.values())
            ):
                self.passing[key] = trial
            for name, bracket in self.brackets[key].items():
                bracket.update(
                    failed=bool(verdict.tier_misses[name]) or verdict.blamed == name,
                    passed=verdict.searchable_met,
                    bound=utilisation_bound(reading.tiers[name], limit),
                    growth=verdict.growth(name),
                )

    @staticmethod
    def _shift_blame(
        verdict: Verdict, reading: StrategyReading, brackets: dict[str, Bracket]
    ) -> None:
        """A missed latency objective is not put on a tier at a count already
        seen to pass when another tier is being tried below the count it
        passed at: that one, of those, with the longest waits, is the
        likelier cause."""
        blamed = verdict.blamed
        if blamed is None or brackets[blamed].now != brackets[blamed].high:
            return
        lowered = [
            name
            for name, bracket in brackets.items()
            if bracket.high is not None and bracket.now < bracket.high
        ]
        if lowered:
            culprit = max(lowered, key=lambda name: reading.tiers[name].wait_p99)
            verdict.excess[culprit] = verdict.excess.pop(blamed)
            verdict.blamed = culprit

    def plan(self) -> Plan:
        servers, confirmed, chosen = {}, {}, {}
        for key, tiers in self.brackets.items():
            servers[key] = {
                name: bracket.high if bracket.high is not None else bracket.now
                for name, bracket in tiers.items()
            }
            trial = self.passing.get(key)
            matches = trial is not None and trial.servers == servers[key]
            confirmed[key] = matches and all(b.settled for b in tiers.values())
            chosen[key] = trial if matches else self.latest[key]
        return Plan(
            self.scenario,
            self.settings,
            servers,
            self.start,
            chosen,
            confirmed,
            self.trials,
            self.estimate,
            self.runs,
        )


def make_plan(
    scenario: Scenario,
    settings: PlanSettings,
    progress: Callable[[int, float], None] | None = None,
) -> Plan:
    """Search the fewest servers per strategy and tier meeting the SLOs, in
    at most `settings.runs` runs of the scale model.

    `progress(run, done)` hears how far each run has got.
    """
    started = time.perf_counter()
    search = Search(scenario, settings)
    for index in range(settings.runs):
        run = ScaledRun(search.model, search.servers_for)
        log.info("plan run %d of at most %d", index + 1, settings.runs)
        run.simulate(None if progress is None else _tick(progress, index + 1))
        search.take(run)
        if search.settled:
            break
    plan = search.plan()
    plan.wall_seconds = time.perf_counter() - started
    return plan


def _tick(progress: Callable[[int, float], None], run: int) -> Progress:
    return lambda done: progress(run, done)
