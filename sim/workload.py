"""The shared workload trace: sessions, status switches, faults, group visits.

The trace is drawn once per run and replayed under every strategy, so that
differences between strategies come from the strategy and not from the dice.
Sessions alternate with offline gaps; lengths are drawn so that the configured
online fraction holds from time 0: every user starts online with that
probability, inside a period whose remaining length follows the stationary
(length-biased) law of the renewal process, so there is no warm-up transient.

A session may end by logout or abruptly. After an abrupt end the client is
gone but the server only notices when heartbeats stop: the client sends one
every h seconds from its login, and the server declares it offline T seconds
after the last one it heard, so the user shows as a ghost in between.

Limitation: the run starts with no ghosts: sessions that ended abruptly just
before time 0 are not pending detection, so ghosts build up over the first
timeout.
Limitation: sessions running at time 0 start in the login status mix
(online or invisible), not in the stationary mix that status switches reach.
"""

from dataclasses import dataclass

import numpy as np

from sim.graph import SocialGraph
from sim.scenario import GatewayCrash, LengthDistribution, Scenario

# Event kinds.
LOGIN, SWITCH, LOGOUT, DISCONNECT, TIMEOUT = range(5)
EVENT_NAMES = ("login", "switch", "logout", "disconnect", "timeout")
# Simultaneous events replay ends first: a server that notices a lost client
# at the instant it reconnects sees the loss before the new login.
_REPLAY_ORDER = np.array([3, 4, 2, 0, 1])

# Statuses. Observers see OFFLINE for a disconnected or invisible user.
OFFLINE, ONLINE, AWAY, BUSY, INVISIBLE = range(5)
STATUS_NAMES = ("offline", "online", "away", "busy", "invisible")


@dataclass(frozen=True)
class Sessions:
    """One row per session overlapping the run.

    `start` < 0 marks a session already running at time 0. `end` is when the
    client goes away (logout or abrupt end), `detect` when the server learns
    of it (equal to `end` for a logout). `crashed` marks a session cut short
    by a gateway crash; `reconnect` one opened by reconnecting after it.
    """

    user: np.ndarray
    start: np.ndarray
    end: np.ndarray
    detect: np.ndarray
    abrupt: np.ndarray
    mode: np.ndarray
    crashed: np.ndarray
    reconnect: np.ndarray

    def __len__(self) -> int:
        return len(self.user)


@dataclass(frozen=True)
class Workload:
    """Everything users do in a run, as time-sorted event arrays.

    `event_session[i]` is the session an event belongs to, so that a late
    timeout of an old session can be told from the current one.
    """

    duration: float
    users: int
    sessions: Sessions
    event_time: np.ndarray
    event_kind: np.ndarray
    event_user: np.ndarray
    event_mode: np.ndarray
    event_session: np.ndarray
    visit_time: np.ndarray
    visit_user: np.ndarray
    visit_group: np.ndarray
    visit_close: np.ndarray

    @property
    def initially_online(self) -> np.ndarray:
        online = np.zeros(self.users, dtype=bool)
        online[self.sessions.user[self.sessions.start < 0]] = True
        return online

    def count(self, kind: int) -> int:
        return int((self.event_kind == kind).sum())


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
    steady: bool = True,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Alternate sessions and gaps for every user over [0, duration).

    Returns the initial online mask, the end of each user's initial period,
    and the toggles (time, user, new online state, end of the period it
    starts), sorted by time. With `steady` false everyone starts offline at
    the beginning of a gap.
    """
    gap = gap_distribution(session, online_fraction)
    if steady:
        online = rng.random(users) < online_fraction
        next_toggle = np.where(
            online,
            draw_residuals(session, users, rng),
            draw_residuals(gap, users, rng),
        )
    else:
        online = np.zeros(users, dtype=bool)
        next_toggle = draw_lengths(gap, users, rng)
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

    if not times:
        empty = np.zeros(0)
        return (
            initially_online,
            initial_until,
            empty,
            empty.astype(np.int32),
            (empty.astype(bool)),
            empty,
        )
    change_time = np.concatenate(times)
    order = np.argsort(change_time, kind="stable")
    return (
        initially_online,
        initial_until,
        change_time[order],
        np.concatenate(who)[order].astype(np.int32),
        np.concatenate(status)[order],
        np.concatenate(until)[order],
    )


def detection_times(
    anchor: np.ndarray, end: np.ndarray, interval: float, timeout: float
) -> np.ndarray:
    """When the server declares a client offline after it vanished at `end`.

    Heartbeats leave at anchor + k * interval; the last one before `end` (or
    the login at `anchor` itself) is the last sign of life, and the server
    waits `timeout` after it.
    """
    beats = np.floor(np.maximum(end - anchor, 0.0) / interval)
    return anchor + beats * interval + timeout


def build_sessions(
    scenario: Scenario, users: int, rng: np.random.Generator
) -> Sessions:
    """Session intervals from the renewal process, with end kinds and modes."""
    population = scenario.population
    behaviour = scenario.behaviour
    heartbeat = scenario.heartbeat
    online, initial_until, times, who, status, until = generate_sessions(
        users,
        population.online_fraction,
        population.session,
        scenario.duration,
        rng,
        steady=population.start == "steady",
    )
    first = np.flatnonzero(online)
    logins = np.flatnonzero(status)
    count = len(first) + len(logins)

    # Sessions running at time 0 get a random heartbeat phase.
    start = np.concatenate([np.full(len(first), -1.0), times[logins]])
    anchor = np.concatenate(
        [-rng.random(len(first)) * heartbeat.interval, times[logins]]
    )
    end = np.concatenate([initial_until[first], until[logins]])
    user = np.concatenate([first, who[logins]]).astype(np.int32)
    abrupt = rng.random(count) < behaviour.abrupt_disconnect_share
    detect = np.where(
        abrupt,
        detection_times(anchor, end, heartbeat.interval, heartbeat.timeout),
        end,
    )
    mode = np.where(
        rng.random(count) < behaviour.invisible_login_share, INVISIBLE, ONLINE
    ).astype(np.int8)
    flags = np.zeros(count, dtype=bool)
    return Sessions(user, start, end, detect, abrupt, mode, flags, flags.copy())


def apply_crash(
    sessions: Sessions,
    crash: GatewayCrash,
    gateways: int,
    heartbeat_interval: float,
    heartbeat_timeout: float,
    invisible_share: float,
    rng: np.random.Generator,
) -> Sessions:
    """Cut the sessions held by the crashed gateway and add their reconnects.

    A session is held when its client is connected at the crash. The server
    learns of the loss `detect_after` later. Each client reconnects after a
    uniform jitter, unless its user would have left by then, and carries on
    until the session's planned end.

    Limitation: reconnecting clients return to the same gateway server (the
    static sharding of users to gateways does not change during a run).
    """
    held = (
        (sessions.user % gateways == crash.server)
        & (sessions.start <= crash.at)
        & (sessions.end > crash.at)
    )
    index = np.flatnonzero(held)
    back = crash.at + rng.random(len(index)) * crash.reconnect_jitter
    returns = back < sessions.end[index]
    index_back, back = index[returns], back[returns]
    modes = np.where(
        rng.random(len(index_back)) < invisible_share, INVISIBLE, ONLINE
    ).astype(np.int8)

    end = sessions.end.copy()
    detect = sessions.detect.copy()
    abrupt = sessions.abrupt.copy()
    crashed = sessions.crashed.copy()
    end[index] = crash.at
    detect[index] = crash.at + crash.detect_after
    abrupt[index] = True
    crashed[index] = True

    old_end = sessions.end[index_back]
    old_abrupt = sessions.abrupt[index_back]
    new_detect = np.where(
        old_abrupt,
        detection_times(back, old_end, heartbeat_interval, heartbeat_timeout),
        old_end,
    )
    fresh = len(index_back)
    return Sessions(
        np.concatenate([sessions.user, sessions.user[index_back]]),
        np.concatenate([sessions.start, back]),
        np.concatenate([end, old_end]),
        np.concatenate([detect, new_detect]),
        np.concatenate([abrupt, old_abrupt]),
        np.concatenate([sessions.mode, modes]),
        np.concatenate([crashed, np.zeros(fresh, bool)]),
        np.concatenate([sessions.reconnect, np.ones(fresh, bool)]),
    )


def _poisson_times(
    starts: np.ndarray, ends: np.ndarray, rate: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """A Poisson stream of `rate` per second inside each interval.

    Returns the times and the index of the interval each one falls in.
    """
    lengths = np.maximum(ends - starts, 0.0)
    counts = rng.poisson(rate * lengths)
    owner = np.repeat(np.arange(len(starts)), counts)
    times = starts[owner] + rng.random(len(owner)) * lengths[owner]
    return times, owner


def status_switches(
    scenario: Scenario, sessions: Sessions, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Switches between online, away, busy and invisible while connected."""
    behaviour = scenario.behaviour
    start = np.maximum(sessions.start, 0.0)
    end = np.minimum(sessions.end, scenario.duration)
    times, owner = _poisson_times(
        start, end, behaviour.status_switches_per_hour / 3600.0, rng
    )
    weights = behaviour.switch_to
    chances = np.array(
        [0.0, weights.online, weights.away, weights.busy, weights.invisible]
    )
    modes = rng.choice(5, size=len(times), p=chances / chances.sum()).astype(np.int8)
    return times, owner, modes


def group_visits(
    scenario: Scenario,
    graph: SocialGraph,
    sessions: Sessions,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Group openings while connected, each of one of the user's groups chosen
    uniformly, open for a drawn time but not past the session's end.

    Limitation: no group is open at time 0; open visits build up over the
    first visit lengths, so lazy-pull load starts low in a steady-state run.
    """
    behaviour = scenario.behaviour
    memberships = graph.groups.degrees()[sessions.user]
    start = np.maximum(sessions.start, 0.0)
    end = np.where(memberships > 0, np.minimum(sessions.end, scenario.duration), start)
    times, owner = _poisson_times(
        start, end, behaviour.group_visits_per_hour / 3600.0, rng
    )
    user = sessions.user[owner].astype(np.int64)
    choice = np.floor(rng.random(len(user)) * graph.groups.degrees()[user])
    group = graph.groups.indices[graph.groups.indptr[user] + choice.astype(np.int64)]
    close = np.minimum(
        times + draw_lengths(behaviour.group_visit_duration, len(times), rng),
        sessions.end[owner],
    )
    order = np.argsort(times, kind="stable")
    return (
        times[order],
        user[order].astype(np.int32),
        group[order].astype(np.int32),
        close[order],
    )


def generate_workload(
    scenario: Scenario,
    graph: SocialGraph,
    session_rng: np.random.Generator,
    visit_rng: np.random.Generator,
) -> Workload:
    """Draw the whole trace of a run."""
    duration = scenario.duration
    sessions = build_sessions(scenario, graph.users, session_rng)
    crashes = sorted(
        (f for f in scenario.faults if isinstance(f, GatewayCrash)), key=lambda f: f.at
    )
    for crash in crashes:
        sessions = apply_crash(
            sessions,
            crash,
            scenario.tiers.gateway.servers,
            scenario.heartbeat.interval,
            scenario.heartbeat.timeout,
            scenario.behaviour.invisible_login_share,
            session_rng,
        )
    switch_time, switch_owner, switch_mode = status_switches(
        scenario, sessions, session_rng
    )

    # Events of every session, then the switches inside them.
    index = np.arange(len(sessions), dtype=np.int32)
    parts = [
        (sessions.start >= 0, sessions.start, LOGIN, sessions.mode),
        (~sessions.abrupt, sessions.end, LOGOUT, OFFLINE),
        (sessions.abrupt, sessions.end, DISCONNECT, OFFLINE),
        (sessions.abrupt, sessions.detect, TIMEOUT, OFFLINE),
    ]
    times, kinds, owners, modes = [], [], [], []
    for keep, when, kind, mode in parts:
        keep = keep & (when < duration)
        times.append(when[keep])
        kinds.append(np.full(int(keep.sum()), kind, np.int8))
        owners.append(index[keep])
        modes.append(np.broadcast_to(mode, len(sessions))[keep].astype(np.int8))
    times.append(switch_time)
    kinds.append(np.full(len(switch_time), SWITCH, np.int8))
    owners.append(switch_owner.astype(np.int32))
    modes.append(switch_mode)

    event_time = np.concatenate(times)
    event_kind = np.concatenate(kinds)
    event_session = np.concatenate(owners)
    event_mode = np.concatenate(modes)
    order = np.lexsort((_REPLAY_ORDER[event_kind], event_time))

    visit_time, visit_user, visit_group, visit_close = group_visits(
        scenario, graph, sessions, visit_rng
    )
    return Workload(
        duration=duration,
        users=graph.users,
        sessions=sessions,
        event_time=event_time[order],
        event_kind=event_kind[order],
        event_user=sessions.user[event_session[order]],
        event_mode=event_mode[order],
        event_session=event_session[order],
        visit_time=visit_time,
        visit_user=visit_user,
        visit_group=visit_group,
        visit_close=visit_close,
    )


def mean_online_fraction(workload: Workload, start: float = 0.0) -> float:
    """Time-averaged share of users with a connected client over [start, end)."""
    sessions = workload.sessions
    low = np.maximum(sessions.start, start)
    high = np.minimum(sessions.end, workload.duration)
    area = float(np.maximum(high - low, 0.0).sum())
    return area / (workload.users * (workload.duration - start))
