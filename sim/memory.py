"""The memory guard: estimate what a scenario needs before building it.

The estimate adds up the large arrays of a run: the friend graph in both
directions (and the temporary arrays of building it), group memberships, the
workload trace, the key counts per cache shard of polling, the per-slot
series of every tier of every strategy and the load table. It errs on the
high side; the guard refuses a scenario whose estimate exceeds the memory
available, and says which population would fit.

Limitation: for a graph read from a file the estimate scales with the file's
size, which is rough for compressed files.
"""

import math
from dataclasses import dataclass
from pathlib import Path

import psutil

from sim.errors import PresenceSimError
from sim.scenario import EdgeListGraph, MembershipGroups, Scenario, SyntheticGroups

# Bytes per item, with the temporaries of building each structure.
ARC_BYTES = 26
MEMBERSHIP_BYTES = 28
USER_BYTES = 120
EVENT_BYTES = 60
SLOT_BYTES = 3 * 8 + 120
FILE_BYTES_FACTOR = 30
BASELINE_BYTES = 400 * 2**20
SAFETY = 1.25


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes a scenario needs, split into the part that grows with users and
    the part that does not."""

    per_user: float
    fixed: float
    users: int

    @property
    def total(self) -> float:
        return SAFETY * (self.per_user * self.users + self.fixed)

    def largest_population(self, available: float) -> int:
        room = available / SAFETY - self.fixed
        return max(0, int(room / self.per_user)) if self.per_user > 0 else 0


def estimate(scenario: Scenario) -> MemoryEstimate:
    """What a run of the scenario needs, by the sizes of its big arrays."""
    population = scenario.population
    users = population.users
    fixed = float(BASELINE_BYTES)
    per_user = float(USER_BYTES)

    if isinstance(scenario.graph, EdgeListGraph):
        fixed += FILE_BYTES_FACTOR * Path(scenario.graph.path).stat().st_size
    else:
        per_user += ARC_BYTES * min(scenario.graph.out_degree.mean, users)
    if isinstance(scenario.groups, SyntheticGroups):
        per_user += MEMBERSHIP_BYTES * scenario.groups.groups_per_user
    elif isinstance(scenario.groups, MembershipGroups):
        fixed += FILE_BYTES_FACTOR * Path(scenario.groups.path).stat().st_size

    # Sessions, status events and group visits per user over the run.
    hours = scenario.duration / 3600.0
    online_hours = population.online_fraction * hours
    cycle = population.session.mean / population.online_fraction
    sessions = 1 + scenario.duration / cycle
    behaviour = scenario.behaviour
    events = 4 * sessions + online_hours * (
        behaviour.status_switches_per_hour + behaviour.group_visits_per_hour
    )
    per_user += EVENT_BYTES * events

    # A poll strategy counts each user's keys per cache shard (int32).
    polls = scenario.strategies.friends.count("poll")
    polls += scenario.strategies.groups.count("poll")
    per_user += 4 * scenario.tiers.cache.servers * polls

    strategies = len(scenario.strategies.friends) + len(scenario.strategies.groups)
    strategies += 2 if scenario.system_messages else 0
    slots = math.ceil(scenario.duration / scenario.metrics.slot)
    fixed += SLOT_BYTES * slots * 4 * max(strategies, 1)
    return MemoryEstimate(per_user, fixed, users)


def available_bytes() -> float:
    """Memory this machine can give a run now."""
    return float(psutil.virtual_memory().available)


def check_memory(scenario: Scenario, available: float | None = None) -> MemoryEstimate:
    """Refuse a scenario that would not fit, naming the largest that would."""
    need = estimate(scenario)
    room = available_bytes() if available is None else available
    if need.total <= room:
        return need
    largest = need.largest_population(room)
    if largest >= 2:
        advice = f"the largest population that fits is about {largest:,} users"
    else:
        advice = (
            "even two users do not fit: shorten duration, widen metrics.slot "
            "or lower the event rates"
        )
    raise PresenceSimError(
        f"population.users: this scenario needs about {_gib(need.total)} of "
        f"memory and {_gib(room)} is available; {advice}"
    )


def _gib(size: float) -> str:
    gib = size / 2**30
    return f"{gib:,.1f} GiB" if gib < 1e6 else f"{gib:.1e} GiB"
