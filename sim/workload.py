"""The shared workload trace: sessions, status changes and group visits.

The trace is drawn once per run and replayed under every strategy, so that
differences between strategies come from the strategy and not from the dice.
Sessions alternate with offline gaps; lengths are drawn so that the configured
online fraction holds from time 0: every user starts online with that
probability, inside a period whose remaining length follows the stationary
(length-biased) law of the renewal process, so there is no warm-up transient.
"""

from dataclasses import dataclass

import numpy as np

from sim.graph import SocialGraph
from sim.scenario import LengthDistribution, Scenario


@dataclass(frozen=True)
class Workload:
    """Everything users do in a run, as time-sorted arrays.

    `change_until[i]` is when the period begun by change i ends: the logout of
    a session that change i opened, or the next login after a logout. Times
    past `duration` mean "not within this run".
    """

    duration: float
    initially_online: np.ndarray
    initial_until: np.ndarray
    change_time: np.ndarray
    change_user: np.ndarray
    change_online: np.ndarray
    change_until: np.ndarray
    visit_time: np.ndarray
    visit_user: np.ndarray
    visit_group: np.ndarray

    @property
    def changes(self) -> int:
        return len(self.change_time)

    def online_at(self, t: float) -> np.ndarray:
        """The online mask just after every change at or before time t."""
        online = self.initially_online.copy()
        last = np.searchsorted(self.change_time, t, side="right")
        # Replaying in order leaves each user's latest status in place.
        online[self.change_user[:last]] = self.change_online[:last]
        return online


def gap_distribution(
    session: LengthDistribution, online_fraction: float
) -> LengthDistribution:
    """Offline gaps of the same family whose mean gives the online fraction."""
    mean = session.mean * (1 - online_fraction) / online_fraction
    return session.model_copy(update={"mean": mean})


def draw_lengths(
    spec: LengthDistribution, size: int | tuple[int, ...], rng: np.random.Generator
) -> np.ndarray:
    """Draw lengths of time (seconds) from a length distribution."""
    if spec.distribution == "fixed":
        return np.full(size, spec.mean)
    if spec.distribution == "exponential":
        return rng.exponential(spec.mean, size)
    sigma2 = np.log1p(spec.cv**2)
    return rng.lognormal(np.log(spec.mean) - sigma2 / 2, np.sqrt(sigma2), size)


def draw_residuals(
    spec: LengthDistribution, size: int, rng: np.random.Generator
) -> np.ndarray:
    """Remaining length of the period a stationary observer finds itself in.

    The period covering a random instant is length-biased; the instant is
    uniform inside it.
    """
    if spec.distribution == "fixed":
        biased = np.full(size, spec.mean)
    elif spec.distribution == "exponential":
        biased = rng.gamma(2.0, spec.mean, size)
    else:
        sigma2 = np.log1p(spec.cv**2)
        mu = np.log(spec.mean) - sigma2 / 2
        biased = rng.lognormal(mu + sigma2, np.sqrt(sigma2), size)
    return rng.random(size) * biased


def generate_sessions(
    users: int,
    online_fraction: float,
    session: LengthDistribution,
    duration: float,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Alternate sessions and gaps for every user over [0, duration).

    Returns the initial online mask, the end of each user's initial period,
    and the changes (time, user, new status, end of the period it starts),
    sorted by time.
    """
    gap = gap_distribution(session, online_fraction)
    online = rng.random(users) < online_fraction
    next_toggle = np.where(
        online,
        draw_residuals(session, users, rng),
        draw_residuals(gap, users, rng),
    )
    initial_until = next_toggle.copy()
    initially_online = online.copy()

    times, who, status, until = [], [], [], []
    active = np.flatnonzero(next_toggle < duration)
    while len(active):
        # Every active user toggles once per round; rounds shrink quickly.
        times.append(next_toggle[active])
        who.append(active)
        online[active] = ~online[active]
        now_online = online[active]
        lengths = np.where(
            now_online,
            draw_lengths(session, len(active), rng),
            draw_lengths(gap, len(active), rng),
        )
        next_toggle[active] += lengths
        status.append(now_online)
        until.append(next_toggle[active])
        active = active[next_toggle[active] < duration]

    if times:
        change_time = np.concatenate(times)
        order = np.argsort(change_time, kind="stable")
        change_time = change_time[order]
        change_user = np.concatenate(who)[order].astype(np.int32)
        change_online = np.concatenate(status)[order]
        change_until = np.concatenate(until)[order]
    else:
        change_time = np.zeros(0)
        change_user = np.zeros(0, np.int32)
        change_online = np.zeros(0, bool)
        change_until = np.zeros(0)
    return (
        initially_online,
        initial_until,
        change_time,
        change_user,
        change_online,
        change_until,
    )


def generate_visits(
    graph: SocialGraph,
    starts: np.ndarray,
    ends: np.ndarray,
    users: np.ndarray,
    visits_per_hour: float,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Group openings: a Poisson stream while online, one of the user's groups
    chosen uniformly each time."""
    memberships = graph.groups.degrees()[users]
    has_groups = memberships > 0
    starts, ends, users = starts[has_groups], ends[has_groups], users[has_groups]
    counts = rng.poisson(visits_per_hour / 3600.0 * (ends - starts))
    user = np.repeat(users, counts)
    start = np.repeat(starts, counts)
    length = np.repeat(ends - starts, counts)
    time = start + rng.random(len(user)) * length
    choice = np.floor(rng.random(len(user)) * graph.groups.degrees()[user])
    group = graph.groups.indices[graph.groups.indptr[user] + choice.astype(np.int64)]
    order = np.argsort(time, kind="stable")
    return time[order], user[order].astype(np.int32), group[order].astype(np.int32)


def generate_workload(
    scenario: Scenario,
    graph: SocialGraph,
    session_rng: np.random.Generator,
    visit_rng: np.random.Generator,
) -> Workload:
    """Draw the whole trace of a run."""
    duration = scenario.duration
    population = scenario.population
    (
        initially_online,
        initial_until,
        change_time,
        change_user,
        change_online,
        change_until,
    ) = generate_sessions(
        graph.users,
        population.online_fraction,
        population.session,
        duration,
        session_rng,
    )

    # Online intervals: initial sessions, then every session a login opens.
    first = np.flatnonzero(initially_online)
    logins = np.flatnonzero(change_online)
    starts = np.concatenate([np.zeros(len(first)), change_time[logins]])
    ends = np.minimum(
        np.concatenate([initial_until[first], change_until[logins]]), duration
    )
    users = np.concatenate([first, change_user[logins]]).astype(np.int64)
    visit_time, visit_user, visit_group = generate_visits(
        graph, starts, ends, users, scenario.behaviour.group_visits_per_hour, visit_rng
    )
    return Workload(
        duration,
        initially_online,
        initial_until,
        change_time,
        change_user,
        change_online,
        change_until,
        visit_time,
        visit_user,
        visit_group,
    )


def mean_online_fraction(workload: Workload) -> float:
    """Time-averaged share of users online over the run, from the trace."""
    users = len(workload.initially_online)
    steps = np.where(workload.change_online, 1, -1)
    counts = workload.initially_online.sum() + np.concatenate([[0], np.cumsum(steps)])
    edges = np.concatenate([[0.0], workload.change_time, [workload.duration]])
    area = float((counts * np.diff(edges)).sum())
    return area / (users * workload.duration)
