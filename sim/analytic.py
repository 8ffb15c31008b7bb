"""Closed-form predictions for every strategy, without simulating anything.

The model is the simulator's own: users alternate sessions and offline gaps
independently of each other, so at any instant each user is online with the
online fraction p, independently of the graph; every user changes status at
the same rate, so the user behind a change is uniform over users; a tier is
`servers` servers of `workers` workers with one FIFO queue each, users
sharded across servers by number. From that:

- online fraction p = E[session] / (E[session] + E[gap]), and each user
  changes status 2 / (E[session] + E[gap]) = 2p / E[session] times a second;
- a push for a change of u reaches Binomial(|R(u)|, p) observers, so N is a
  binomial mixture over the in-degree distribution and E[N] = p E[|R(u)|];
- a group push reaches Binomial(K(u), p) observers, K(u) the sum over u's
  groups of (size - 1), counted per group as the article does;
- polling costs (online users) / T requests a second, and an observer sees a
  change at its next poll, a uniform wait on [0, T), unless its session ends
  first;
- the status cache takes one write per change and, for each batch read (a
  login's friend list, a poll, a pull), one job per shard the keys fall on,
  costing one `get` per key; the relation db loads a friend list per login
  and a member list per lazy pull;
- a tier's waits follow Erlang C, extended to general service times and to
  batches of jobs (a fan-out, the polls of one slot) as described at
  `tier_estimate`.

Nothing here imports the graph or workload modules up front, and a
synthetic graph is never built: `presence-sim estimate` must answer for a
hundred million users in well under a second. Only a scenario that reads
data files loads them.
"""

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from sim.scenario import LengthDistribution, Scenario, SyntheticGraph, SyntheticGroups

if TYPE_CHECKING:
    # Only for annotations: importing the graph module costs half a second.
    from sim.graph import SocialGraph

# Binomial tails beyond this many standard deviations carry no mass a float
# can hold next to the bulk.
_TAIL_SD = 12.0
# Points on [0, T] for the poll-detection integrals.
_POLL_GRID = 4097
# Rows of a binomial-mixture matrix built at once.
_CHUNK = 256
# Probabilities below this are dropped from a distribution's support.
_NEGLIGIBLE = 1e-16


@dataclass(frozen=True)
class Pmf:
    """A distribution over non-negative integers: P(X = values[i]) = probs[i]."""

    values: np.ndarray
    probs: np.ndarray

    @classmethod
    def point(cls, value: int) -> "Pmf":
        return cls(np.array([value], np.int64), np.ones(1))

    @classmethod
    def of_samples(cls, samples: np.ndarray) -> "Pmf":
        """The empirical distribution of integer samples (e.g. a degree list)."""
        if len(samples) == 0:
            return cls.point(0)
        values, counts = np.unique(np.asarray(samples, np.int64), return_counts=True)
        return cls(values, counts / counts.sum())

    @classmethod
    def binomial(cls, trials: int, q: float) -> "Pmf":
        """Binomial(trials, q), cut where the tails fall below float precision."""
        trials = int(trials)
        if trials <= 0 or q <= 0:
            return cls.point(0)
        if q >= 1:
            return cls.point(trials)
        mean, sd = trials * q, math.sqrt(trials * q * (1 - q))
        high = min(trials, math.ceil(mean + _TAIL_SD * sd + _TAIL_SD))
        low = max(0, math.floor(mean - _TAIL_SD * sd - _TAIL_SD))
        k = np.arange(high + 1)

        # log C(n, k) = sum_{j<k} log(n - j) - log k!, both as running sums,
        # which stays exact for n in the hundreds of millions.
        falling = np.concatenate([[0.0], np.cumsum(np.log(trials - k[:-1]))])
        factorial = np.concatenate([[0.0], np.cumsum(np.log(k[1:]))])
        log_pmf = falling - factorial + k * math.log(q) + (trials - k) * math.log1p(-q)
        probs = np.exp(log_pmf[low:])
        return cls(k[low:], probs / probs.sum())

    @classmethod
    def poisson(cls, mean: float) -> "Pmf":
        """Poisson(mean), cut where the tails fall below float precision."""
        if mean <= 0:
            return cls.point(0)
        sd = math.sqrt(mean)
        high = math.ceil(mean + _TAIL_SD * sd + _TAIL_SD)
        low = max(0, math.floor(mean - _TAIL_SD * sd - _TAIL_SD))
        k = np.arange(high + 1)
        factorial = np.concatenate([[0.0], np.cumsum(np.log(k[1:]))])
        probs = np.exp(k * math.log(mean) - mean - factorial)[low:]
        return cls(k[low:], probs / probs.sum())

    def mean(self) -> float:
        return float(self.values @ self.probs)

    def second_moment(self) -> float:
        return float((self.values.astype(float) ** 2) @ self.probs)

    def expect(self, values: np.ndarray) -> float:
        """E[f(X)] for f given by its value at each point of the support."""
        return float(np.asarray(values, float) @ self.probs)

    def quantile(self, q: float) -> float:
        """The smallest value whose cumulative probability reaches q."""
        cumulative = np.cumsum(self.probs)
        index = int(np.searchsorted(cumulative, q * cumulative[-1] - 1e-12))
        return float(self.values[min(index, len(self.values) - 1)])

    def thinned(self, q: float) -> "Pmf":
        """Keep each of X units independently with probability q.

        The result is the mixture over x of Binomial(x, q): the number of
        online users among x when each is online with probability q.
        """
        if q >= 1:
            return self
        top = int(self.values.max())
        if q <= 0 or top == 0:
            return Pmf.point(0)
        j = np.arange(top + 1)
        factorial = np.concatenate([[0.0], np.cumsum(np.log(np.arange(1, top + 1)))])
        log_q, log_rest = math.log(q), math.log1p(-q)
        result = np.zeros(top + 1)
        for start in range(0, len(self.values), _CHUNK):
            x = self.values[start : start + _CHUNK, None]
            weight = self.probs[start : start + _CHUNK, None]
            inside = j[None, :] <= x
            rest = np.where(inside, x - j[None, :], 0)
            log_pmf = (
                factorial[x]
                - factorial[j][None, :]
                - factorial[rest]
                + j * log_q
                + rest * log_rest
            )
            result += (weight * np.where(inside, np.exp(log_pmf), 0.0)).sum(axis=0)
        return Pmf(j, result / result.sum()).trimmed()

    def trimmed(self) -> "Pmf":
        """The same law without the values too unlikely to matter."""
        keep = self.probs > _NEGLIGIBLE
        if keep.all():
            return self
        return Pmf(self.values[keep], self.probs[keep] / self.probs[keep].sum())


# --- Sessions and polling ----------------------------------------------------


def online_fraction(session_mean: float, gap_mean: float) -> float:
    """Share of time a user is online: E[session] / (E[session] + E[gap])."""
    return session_mean / (session_mean + gap_mean)


def gap_mean(session_mean: float, fraction: float) -> float:
    """The mean offline gap that gives the online fraction: s (1 - p) / p."""
    return session_mean * (1 - fraction) / fraction


def changes_per_user_second(session_mean: float, fraction: float) -> float:
    """Status changes per user per second: a login and a logout per cycle.

    A cycle lasts E[session] + E[gap] = E[session] / p on average, so the
    rate is 2 / (E[session] + E[gap]) = 2 p / E[session] (renewal-reward).
    """
    return 2.0 / (session_mean + gap_mean(session_mean, fraction))


def _normal_cdf(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.vectorize(math.erf)(x / math.sqrt(2.0)))


def residual_survival(session: LengthDistribution, w: np.ndarray) -> np.ndarray:
    """P(the rest of a session in progress lasts longer than w).

    For a stationary observer the remaining length has survival
    E[(X - w)+] / E[X] (the equilibrium residual-life law of renewal
    theory): exp(-w/m) for exponential sessions, (1 - w/m)+ for fixed ones,
    and Phi(d1) - (w/m) Phi(d2) for lognormal ones, with
    d1 = (mu + sigma^2 - ln w) / sigma and d2 = d1 - sigma.
    """
    w = np.asarray(w, float)
    mean = session.mean
    if session.distribution == "fixed":
        return np.clip(1.0 - w / mean, 0.0, 1.0)
    if session.distribution == "exponential":
        return np.exp(-w / mean)
    sigma = math.sqrt(math.log1p(session.cv**2))
    mu = math.log(mean) - sigma**2 / 2
    with np.errstate(divide="ignore"):
        d1 = (mu + sigma**2 - np.log(w)) / sigma
    return _normal_cdf(d1) - (w / mean) * _normal_cdf(d1 - sigma)


@dataclass(frozen=True)
class PollDetection:
    """How an online observer polling every T learns of a friend's change.

    `seen` is the share of observers whose next poll comes before their
    session ends; `mean`, `p50` and `p99` describe the wait of those who see
    it. The wait until the next poll is uniform on [0, T) for uniform phases,
    so without logouts the mean is T/2; an observer who logs out first never
    sees the change, which drops long waits: for exponential sessions of mean
    m the mean becomes m - T e^(-T/m) / (1 - e^(-T/m)), about
    T/2 (1 - T/(6m)).
    """

    seen: float
    mean: float
    p50: float
    p99: float


def poll_detection(interval: float, session: LengthDistribution) -> PollDetection:
    """Detection delay of polling with period T, integrated numerically."""
    w = np.linspace(0.0, interval, _POLL_GRID)
    density = residual_survival(session, w)
    steps = np.diff(w)
    cumulative = np.concatenate(
        [[0.0], np.cumsum((density[1:] + density[:-1]) / 2 * steps)]
    )
    mass = cumulative[-1]
    weighted = float(np.sum((w[1:] * density[1:] + w[:-1] * density[:-1]) / 2 * steps))
    share = cumulative / mass
    return PollDetection(
        seen=float(mass / interval),
        mean=weighted / float(mass),
        p50=float(np.interp(0.5, share, w)),
        p99=float(np.interp(0.99, share, w)),
    )


# --- The graph, as far as the formulas need it -------------------------------


@dataclass(frozen=True)
class GraphProfile:
    """What the predictions need to know about users, friends and groups.

    `in_degree` is the distribution of |R(u)| over users; `group_slots` that
    of K(u), the sum over u's groups of (size - 1), or None without groups;
    `distinct_co_members` is the mean number of distinct users sharing a
    group with u (NaN when too costly to count); `with_groups` the share of
    users in at least one group; `opened_group_size` the mean size of the
    group a visit opens. `basis` says where the numbers come from.
    """

    users: int
    in_degree: Pmf
    group_slots: Pmf | None
    distinct_co_members: float
    with_groups: float
    basis: str
    opened_group_size: float = 0.0


def expected_out_degree(graph: SyntheticGraph, users: int) -> float:
    """Mean friend count of a synthetic graph, after rounding and clipping.

    The generator clips every draw to the users - 1 others there are.
    """
    spec, cap = graph.out_degree, users - 1
    if spec.distribution == "fixed":
        return float(min(round(spec.mean), cap))
    if spec.distribution == "poisson":
        # The cap only matters when there are barely more users than friends.
        draws = Pmf.poisson(spec.mean)
        return draws.expect(np.minimum(draws.values, cap))
    sigma = math.sqrt(math.log1p(spec.cv**2))
    mu = math.log(spec.mean) - sigma**2 / 2
    # Partial expectation of a lognormal: E[X; X > c] = m Phi(d1).
    d1 = (mu + sigma**2 - math.log(cap)) / sigma
    above = spec.mean * float(_normal_cdf(np.array([d1]))[0])
    share_above = float(_normal_cdf(np.array([d1 - sigma]))[0])
    return spec.mean - above + cap * share_above


def synthetic_in_degree(graph: SyntheticGraph, users: int) -> Pmf:
    """In-degree of a synthetic graph: Binomial(n - 1, E[out-degree] / (n - 1)).

    Each other user v adds u with probability d(v) / (n - 1), independently
    of the rest, whatever the law of d(v).
    """
    others = users - 1
    return Pmf.binomial(others, expected_out_degree(graph, users) / others)


def synthetic_group_profile(groups: SyntheticGroups, users: int) -> tuple[Pmf, float]:
    """K(u) and the mean distinct co-members for the synthetic group rounds.

    Each of the G rounds deals all users into groups of s (the last one
    smaller, r members): u's group has s - 1 others unless u lands in the
    small one, with probability r / n. Two users share a group in a round
    with probability pi = sum |g| (|g| - 1) / (n (n - 1)), independently per
    round, so u has (n - 1)(1 - (1 - pi)^G) distinct co-members on average.
    """
    size = min(groups.group_size, users)
    per_round = -(-users // size)
    last = users - size * (per_round - 1)
    rounds = groups.groups_per_user
    in_small = Pmf.binomial(rounds, last / users) if last < size else Pmf.point(0)
    # Landing in the small group j times leaves j (s - r) fewer slots.
    values = rounds * (size - 1) - in_small.values * (size - last)
    order = np.argsort(values)
    slots = Pmf(values[order], in_small.probs[order])
    pairs = (per_round - 1) * size * (size - 1) + last * (last - 1)
    share = pairs / (users * (users - 1))
    distinct = (users - 1) * (1 - (1 - share) ** rounds)
    return slots, distinct


def scenario_profile(
    scenario: Scenario, graph: "SocialGraph | None" = None
) -> GraphProfile:
    """The profile from the scenario's formulas, or from a loaded graph.

    Synthetic parts come from their parameters, so nothing is built; parts
    read from files come from `graph` (a `sim.graph.SocialGraph`), which must
    then be given.
    """
    if graph is None and reads_files(scenario):
        raise ValueError("this scenario reads files: pass its loaded graph")
    parts = []

    if isinstance(scenario.graph, SyntheticGraph):
        users = scenario.population.users if graph is None else graph.users
        in_degree = synthetic_in_degree(scenario.graph, users)
        parts.append("friends from the degree formula")
    else:
        users = graph.users
        in_degree = Pmf.of_samples(graph.reverse.degrees())
        parts.append("friends from the graph's in-degrees")

    slots, distinct, with_groups, opened = None, 0.0, 0.0, 0.0
    if isinstance(scenario.groups, SyntheticGroups):
        if scenario.groups.groups_per_user > 0:
            slots, distinct = synthetic_group_profile(scenario.groups, users)
            with_groups = 1.0
            # K(u) / G + 1 is the mean size of u's G groups.
            opened = slots.mean() / scenario.groups.groups_per_user + 1
            parts.append("groups from the round formula")
    elif scenario.groups.kind == "file":
        slots, distinct, with_groups = membership_profile(graph)
        opened = opened_group_size(graph)
        parts.append("groups from the membership file")
    return GraphProfile(
        users, in_degree, slots, distinct, with_groups, "; ".join(parts), opened
    )


def opened_group_size(graph: "SocialGraph") -> float:
    """Mean size of the group a visit opens: a user in some group, then one of
    its groups, each uniformly."""
    members, groups = graph.members, graph.groups
    joined = groups.degrees()
    if members.rows == 0 or not joined.any():
        return 0.0
    sizes = members.degrees()
    summed = np.bincount(
        members.indices,
        weights=np.repeat(sizes.astype(float), sizes),
        minlength=graph.users,
    )
    inside = joined > 0
    return float((summed[inside] / joined[inside]).mean())


# Above this many (member, co-member) pairs, distinct co-members are not
# counted: the pair matrix would not fit in memory.
_MAX_PAIRS = 50_000_000


def membership_profile(graph: "SocialGraph") -> tuple[Pmf | None, float, float]:
    """K(u), mean distinct co-members and share in a group, from real groups.

    Limitation: distinct co-members are counted only while the groups hold
    at most 50 million (member, co-member) pairs; beyond that they are NaN.
    """
    members, groups = graph.members, graph.groups
    if members.rows == 0:
        return None, 0.0, 0.0
    sizes = members.degrees()
    slots = np.bincount(
        members.indices,
        weights=np.repeat(sizes - 1, sizes),
        minlength=graph.users,
    ).astype(np.int64)
    with_groups = float((groups.degrees() > 0).mean())
    if float((sizes.astype(float) ** 2).sum()) > _MAX_PAIRS:
        return Pmf.of_samples(slots), math.nan, with_groups

    import scipy.sparse as sp

    # Users sharing a group: the non-zero pattern of M^T M, less the diagonal.
    matrix = sp.csr_array(
        (np.ones(len(members.indices)), members.indices, members.indptr),
        shape=(members.rows, graph.users),
    )
    shared = (matrix.T @ matrix).tocsr()
    shared.setdiag(0)
    shared.eliminate_zeros()
    distinct = float(np.diff(shared.indptr).mean())
    return Pmf.of_samples(slots), distinct, with_groups


# --- Queueing at a tier ------------------------------------------------------


def erlang_c(workers: int, offered: float) -> float:
    """Probability that a job has to wait in an M/M/c queue (Erlang C).

    `offered` is the load a = lambda E[S] in erlangs. Computed through the
    Erlang B recursion B(0) = 1, B(k) = a B(k-1) / (k + a B(k-1)), then
    C = B / (1 - (a/c)(1 - B)); 1 when a >= c.
    """
    if offered <= 0:
        return 0.0
    if offered >= workers:
        return 1.0
    blocking = 1.0
    for k in range(1, workers + 1):
        blocking = offered * blocking / (k + offered * blocking)
    return blocking / (1 - offered / workers * (1 - blocking))


def mmc_wait(arrival_rate: float, service_mean: float, workers: int) -> float:
    """Mean wait in queue of M/M/c: Wq = C(c, a) E[S] / (c - a), a = lambda E[S].

    Infinite when a >= c (the queue grows without bound).
    """
    offered = arrival_rate * service_mean
    if offered >= workers:
        return math.inf
    return erlang_c(workers, offered) * service_mean / (workers - offered)


def service_moments(spec: LengthDistribution) -> tuple[float, float]:
    """E[S] and E[S^2] of a service-time law."""
    mean = spec.mean
    if spec.distribution == "fixed":
        return mean, mean**2
    if spec.distribution == "exponential":
        return mean, 2 * mean**2
    return mean, mean**2 * (1 + spec.cv**2)


@dataclass(frozen=True)
class Stream:
    """The jobs of one operation at one server of a tier.

    Jobs come in batches of `batch` jobs (a single job is a batch of one) at
    `rate` batches a second: a Poisson stream, or one batch per period when
    `periodic` (the polls of one load slot). A job of a batch read costs one
    draw of `service` per key it reads, `keys` keys (one when None).
    """

    op: str
    rate: float
    batch: Pmf
    service: LengthDistribution
    periodic: bool = False
    keys: Pmf | None = None

    @property
    def jobs_per_second(self) -> float:
        return self.rate * self.batch.mean()

    def moments(self) -> tuple[float, float]:
        """E[S] and E[S^2] of one job: a sum of `keys` service draws has mean
        E[K] m and second moment E[K] Var + E[K^2] m^2."""
        mean, second = service_moments(self.service)
        if self.keys is None:
            return mean, second
        keys = self.keys
        return (
            keys.mean() * mean,
            keys.mean() * (second - mean**2) + keys.second_moment() * mean**2,
        )

    def job_service(self) -> LengthDistribution:
        """One job's service law, its mean scaled by the keys it reads."""
        if self.keys is None:
            return self.service
        return self.service.model_copy(
            update={"mean": self.service.mean * self.keys.mean()}
        )


def shard_reads(keys: float, shards: int) -> tuple[float, Pmf]:
    """A batch read of `keys` keys spread uniformly over `shards` shards.

    Returns the share of shards it touches, 1 - (1 - 1/C)^k, and the law of
    the keys read from a touched shard, Binomial(k, 1/C) given at least one.
    """
    count = round(keys)
    if count <= 0:
        return 0.0, Pmf.point(0)
    per_shard = Pmf.binomial(count, 1.0 / shards)
    touched = per_shard.values > 0
    share = float(per_shard.probs[touched].sum())
    return share, Pmf(per_shard.values[touched], per_shard.probs[touched] / share)


def batch_wait(batch: Pmf, workers: int, service: LengthDistribution) -> float:
    """Mean wait of a job behind the earlier jobs of its own batch.

    With the server idle when the batch arrives, job i (from 0) of a batch
    waits floor(i / c) E[S] for fixed service times, and (i - c + 1)+ E[S] / c
    for exponential ones (each start needs one of c busy workers to finish).
    Averaged over jobs, so large batches weigh by their size.

    Limitation: lognormal service times use the exponential rule, an
    approximation.
    """
    mean_batch = batch.mean()
    if mean_batch == 0:
        return 0.0
    b = batch.values.astype(float)
    if service.distribution == "fixed":
        rounds, rest = np.divmod(b, workers)
        total = (workers * rounds * (rounds - 1) / 2 + rounds * rest) * service.mean
    else:
        extra = np.maximum(b - workers, 0.0)
        total = extra * (extra + 1) / 2 * service.mean / workers
    return batch.expect(total) / mean_batch


# Waits shorter than this are reported as 0: no clock of the model resolves them.
_TIME_RESOLUTION = 1e-12


def _resolved(seconds: float) -> float:
    return seconds if seconds >= _TIME_RESOLUTION else 0.0


@dataclass(frozen=True)
class TierEstimate:
    """Predicted load and waits of one tier under one strategy.

    `jobs_per_second` is the whole tier's arrival rate; `utilisation` the
    share of worker time busy, above 1 when the tier is offered more than it
    can serve; waits are means per job in seconds, infinite past saturation.
    `wait_probability` is the chance that a job finds every worker busy
    (Erlang C of the mixed load) and `wait_ahead` the mean wait for the work
    queued ahead of its batch.
    """

    tier: str
    servers: int
    workers: int
    jobs_per_second: float
    utilisation: float
    wait_mean: float
    wait_by_op: dict[str, float] = field(default_factory=dict)
    wait_probability: float = 0.0
    wait_ahead: float = 0.0

    def wait_quantile(self, q: float) -> float:
        """The q-quantile of the wait for the work queued ahead of a job.

        The wait is 0 with probability 1 - P and exponential beyond, with the
        mean `wait_ahead`: P(W > t) = P exp(-t P / wait_ahead). For Poisson
        single jobs with exponential service that is Erlang C's law exactly,
        P(W > t) = C(c, a) exp(-(c mu - lambda) t).

        Limitation: waits behind the earlier jobs of one's own batch are not
        in this quantile, and for other arrival or service laws the tail is
        the exponential one fitted to the mean.
        """
        if self.utilisation >= 1:
            return math.inf
        if self.wait_probability <= 1 - q or self.wait_ahead <= 0:
            return 0.0
        scale = self.wait_ahead / self.wait_probability
        return scale * math.log(self.wait_probability / (1 - q))

    @property
    def queue_mean(self) -> float:
        """Mean number of jobs waiting over the tier (Little's law, L = lambda W)."""
        return self.jobs_per_second * self.wait_mean if self.jobs_per_second else 0.0


def tier_estimate(
    tier: str, servers: int, workers: int, streams: list[Stream]
) -> TierEstimate:
    """Utilisation and mean waits of a tier of `servers` identical servers.

    Streams are given per server, as users are sharded evenly. A job waits
    for the work queued ahead of its batch, then behind the earlier jobs of
    its own batch (`batch_wait`). The first part is the Allen-Cunneen
    approximation of the GI/G/c queue, Wq = C(c, a) E[S] / (c - a) times
    (ca^2 + cs^2) / 2, with ca^2 the rate-weighted mix of 1 for Poisson and
    0 for periodic arrivals and cs^2 the squared coefficient of variation of
    the mixed service time, times the batch factor
    (Var S + E[S]^2 E[B^2] / E[B]) / E[S^2] of the Pollaczek-Khinchine
    formula for batch arrivals. For single jobs, Poisson arrivals and
    exponential service it is Erlang C exactly.

    Limitation: for batches at a server of several workers the split into a
    batch-level queue and an in-batch wait is an approximation (exact for one
    worker or an idle server), and the periodic batches of polls are taken
    as not overlapping with each other.
    """
    rates = np.array([stream.jobs_per_second for stream in streams])
    total = float(rates.sum())
    if total == 0:
        zero = {stream.op: 0.0 for stream in streams}
        return TierEstimate(tier, servers, workers, 0.0, 0.0, 0.0, zero)
    moments = np.array([stream.moments() for stream in streams])
    mean = float(rates @ moments[:, 0]) / total
    second = float(rates @ moments[:, 1]) / total
    offered = total * mean
    utilisation = offered / workers
    if utilisation >= 1:
        saturated = {stream.op: math.inf for stream in streams}
        return TierEstimate(
            tier,
            servers,
            workers,
            total * servers,
            utilisation,
            math.inf,
            saturated,
            1.0,
            math.inf,
        )

    # The queue ahead of a batch, from the whole mix of streams.
    poisson = np.array([0.0 if stream.periodic else 1.0 for stream in streams])
    arrival_scv = float(rates @ poisson) / total
    service_scv = second / mean**2 - 1
    size_bias = np.array(
        [
            stream.batch.second_moment() / stream.batch.mean()
            if stream.batch.mean()
            else 1.0
            for stream in streams
        ]
    )
    variance = moments[:, 1] - moments[:, 0] ** 2
    batch_factor = float(rates @ (variance + moments[:, 0] ** 2 * size_bias)) / float(
        rates @ moments[:, 1]
    )
    waiting = erlang_c(workers, offered)
    ahead = (
        waiting
        * mean
        / (workers - offered)
        * (arrival_scv + service_scv)
        / 2
        * batch_factor
    )

    waits = {
        stream.op: _resolved(
            ahead + batch_wait(stream.batch, workers, stream.job_service())
        )
        for stream in streams
    }
    wait_mean = float(rates @ np.array(list(waits.values()))) / total
    return TierEstimate(
        tier,
        servers,
        workers,
        total * servers,
        utilisation,
        wait_mean,
        waits,
        waiting,
        _resolved(ahead),
    )


# --- Strategies --------------------------------------------------------------


@dataclass(frozen=True)
class StrategyEstimate:
    """Predicted figures of one (audience, strategy), per second of a run.

    `n` is the distribution of N per change (None for lazy pull, which sends
    nothing because of a change); `n_distinct_mean` the expected N of a group
    push deduplicated per recipient (NaN otherwise); latencies in seconds,
    NaN where the strategy has none.

    Limitation: a push has a predicted mean latency but no percentiles.
    """

    audience: str
    strategy: str
    changes_per_second: float
    messages_per_second: float
    requests_per_second: float
    n: Pmf | None
    n_distinct_mean: float
    latency_mean: float
    latency_p50: float
    latency_p99: float
    tiers: list[TierEstimate]

    @property
    def amplification(self) -> float:
        """Presence messages per status change."""
        return self.messages_per_second / self.changes_per_second

    def figures(self, duration: float) -> dict[str, float]:
        """The predictions under the column names of the strategies table."""
        n = self.n
        return {
            "changes": self.changes_per_second * duration,
            "messages": self.messages_per_second * duration,
            "requests": self.requests_per_second * duration,
            "amplification": self.amplification,
            "n_mean": n.mean() if n else math.nan,
            "n_p50": n.quantile(0.50) if n else math.nan,
            "n_p99": n.quantile(0.99) if n else math.nan,
            "latency_mean_s": self.latency_mean,
            "latency_p50_s": self.latency_p50,
            "latency_p99_s": self.latency_p99,
        }


@dataclass(frozen=True)
class Estimate:
    """Every prediction for a scenario, as `presence-sim estimate` prints it."""

    scenario: str
    profile: GraphProfile
    online_fraction: float
    changes_per_second: float
    strategies: list[StrategyEstimate]

    @property
    def online_users(self) -> float:
        return self.online_fraction * self.profile.users


def estimate(scenario: Scenario, profile: GraphProfile) -> Estimate:
    """Predict N, message and request rates, latency and tier load.

    The strategies are those a run would simulate: the friend strategies,
    and the group strategies when there are groups.

    Limitation: the group strategies push_dedup and poll, status switches,
    invisible logins, abrupt disconnects, faults and system messages have no
    prediction yet; every session is taken to begin with a visible login and
    end with a visible logout, and every lazy pull to load its member list
    (`member_list_ttl` and `group_refresh_interval` are left out).
    """
    population = scenario.population
    session, p = population.session, population.online_fraction
    fraction = online_fraction(session.mean, gap_mean(session.mean, p))
    changes = profile.users * changes_per_user_second(session.mean, p)
    context = _Context(scenario, profile, fraction, changes)

    chosen = [("friends", name) for name in scenario.strategies.friends]
    if profile.group_slots is not None:
        chosen += [("groups", name) for name in scenario.strategies.groups]
    builders = {
        ("friends", "push"): _friend_push,
        ("friends", "poll"): _friend_poll,
        ("groups", "push"): _group_push,
        ("groups", "lazy_pull"): _group_lazy_pull,
    }
    # Strategies without a formula yet (group push_dedup and poll) are left
    # out: their predicted columns stay empty.
    strategies = [builders[key](context) for key in chosen if key in builders]
    return Estimate(scenario.name, profile, fraction, changes, strategies)


@dataclass(frozen=True)
class _Context:
    scenario: Scenario
    profile: GraphProfile
    online: float
    changes: float

    @property
    def logins(self) -> float:
        """Logins a second: one per session, half of all status changes."""
        return self.changes / 2

    def change_stream(self) -> Stream:
        """Every strategy writes each logout's status on the presence tier."""
        presence = self.scenario.tiers.presence
        return Stream(
            "change", self.logins / presence.servers, Pmf.point(1), presence.change
        )

    def presence_streams(self) -> list[Stream]:
        """Presence work every strategy does: logouts and login snapshots."""
        presence = self.scenario.tiers.presence
        login = Stream(
            "login", self.logins / presence.servers, Pmf.point(1), presence.login
        )
        return [self.change_stream(), login]

    def gateway_streams(self) -> list[Stream]:
        """Gateway work every strategy does: login requests, the snapshot
        reply, and heartbeats, which reach a gateway once per load slot."""
        gateway, scenario = self.scenario.tiers.gateway, self.scenario
        rate = self.logins / gateway.servers
        beats = Pmf.binomial(
            round(self.profile.users / gateway.servers),
            self.online * scenario.metrics.slot / scenario.heartbeat.interval,
        )
        return [
            Stream("request", rate, Pmf.point(1), gateway.request),
            Stream("snapshot", rate, Pmf.point(1), gateway.deliver),
            Stream(
                "heartbeat",
                1.0 / scenario.metrics.slot,
                beats,
                gateway.heartbeat,
                periodic=True,
            ),
        ]

    def cache_tier(self, *extra: Stream) -> TierEstimate:
        """The status cache: every change's status write and every login's
        batch read of the friend list, one job per shard it touches, plus
        the strategy's own reads."""
        cache = self.scenario.tiers.cache
        touched, keys = shard_reads(self.profile.in_degree.mean(), cache.servers)
        streams = [
            Stream("set", self.changes / cache.servers, Pmf.point(1), cache.set),
            Stream(
                "login_read", self.logins * touched, Pmf.point(1), cache.get, keys=keys
            ),
            *extra,
        ]
        return tier_estimate("cache", cache.servers, cache.workers, streams)

    def reads(self, op: str, per_second: float, keys: float, periodic: bool) -> Stream:
        """A strategy's batch reads of `keys` keys each, `per_second` of them,
        as jobs at one cache shard."""
        cache = self.scenario.tiers.cache
        touched, per_shard = shard_reads(keys, cache.servers)
        return Stream(
            op,
            per_second * touched,
            Pmf.point(1),
            cache.get,
            periodic=periodic,
            keys=per_shard,
        )

    def db_tier(self, *extra: Stream) -> TierEstimate:
        """The relation db: a friend-list load per login, plus the strategy's
        own loads."""
        db = self.scenario.tiers.db
        friends = Stream("friends", self.logins / db.servers, Pmf.point(1), db.friends)
        return tier_estimate("db", db.servers, db.workers, [friends, *extra])

    def write_time(self) -> float:
        """From a change to the end of its presence work, averaged over
        logins (request, hop, login) and logouts (change)."""
        tiers, hop = self.scenario.tiers, self.scenario.network.hop_delay
        return (
            tiers.gateway.request.mean
            + hop
            + tiers.presence.login.mean
            + tiers.presence.change.mean
        ) / 2


def _push(
    context: _Context, audience: str, n: Pmf, distinct: float
) -> StrategyEstimate:
    """A push: the change is written, then fanned out through the gateways."""
    tiers, hop = context.scenario.tiers, context.scenario.network.hop_delay
    gateway_spec, presence_spec = tiers.gateway, tiers.presence
    per_server = n.thinned(1.0 / gateway_spec.servers)
    gateway = tier_estimate(
        "gateway",
        gateway_spec.servers,
        gateway_spec.workers,
        [
            Stream("deliver", context.changes, per_server, gateway_spec.deliver),
            *context.gateway_streams(),
        ],
    )
    presence = tier_estimate(
        "presence",
        presence_spec.servers,
        presence_spec.workers,
        context.presence_streams(),
    )
    # Queueing before the fan-out, averaged over logins and logouts.
    queued = (
        gateway.wait_by_op["request"]
        + presence.wait_by_op["login"]
        + presence.wait_by_op["change"]
    ) / 2
    latency = (
        2 * hop
        + context.write_time()
        + queued
        + gateway.wait_by_op["deliver"]
        + gateway_spec.deliver.mean
    )
    return StrategyEstimate(
        audience,
        "push",
        context.changes,
        context.changes * n.mean(),
        0.0,
        n,
        distinct,
        latency,
        math.nan,
        math.nan,
        [gateway, presence, context.cache_tier(), context.db_tier()],
    )


def _friend_push(context: _Context) -> StrategyEstimate:
    n = context.profile.in_degree.thinned(context.online)
    return _push(context, "friends", n, math.nan)


def _group_push(context: _Context) -> StrategyEstimate:
    n = context.profile.group_slots.thinned(context.online)
    distinct = context.online * context.profile.distinct_co_members
    return _push(context, "groups", n, distinct)


def _requests(
    context: _Context,
    name: str,
    per_second: float,
    batch_of: Callable[[int], Pmf],
    periodic: bool,
) -> list[TierEstimate]:
    """A request through the gateways answered by the presence tier."""
    tiers = context.scenario.tiers
    gateway_spec, presence_spec = tiers.gateway, tiers.presence
    rate = 1.0 / context.scenario.metrics.slot if periodic else None
    gateway_stream = Stream(
        "request",
        rate or per_second / gateway_spec.servers,
        batch_of(gateway_spec.servers),
        gateway_spec.request,
        periodic,
    )
    presence_stream = Stream(
        name,
        rate or per_second / presence_spec.servers,
        batch_of(presence_spec.servers),
        getattr(presence_spec, name),
        periodic,
    )
    # Login requests and polls or pulls share the gateway's request queue.
    gateway_streams = context.gateway_streams()
    gateway_streams[0] = Stream(
        "login_request",
        gateway_streams[0].rate,
        gateway_streams[0].batch,
        gateway_streams[0].service,
    )
    # Each request is answered by one reply delivered through the gateway.
    reply = Stream(
        "reply",
        gateway_stream.rate,
        gateway_stream.batch,
        gateway_spec.deliver,
        periodic,
    )
    return [
        tier_estimate(
            "gateway",
            gateway_spec.servers,
            gateway_spec.workers,
            [gateway_stream, reply, *gateway_streams],
        ),
        tier_estimate(
            "presence",
            presence_spec.servers,
            presence_spec.workers,
            [*context.presence_streams(), presence_stream],
        ),
    ]


def _friend_poll(context: _Context) -> StrategyEstimate:
    scenario, users = context.scenario, context.profile.users
    interval = scenario.strategies.poll_interval
    detection = poll_detection(interval, scenario.population.session)
    n = context.profile.in_degree.thinned(context.online * detection.seen)
    polls = context.online * users / interval

    # The polls of one load slot reach a server together: of the users on
    # it, those online whose phase falls in the slot.
    share = context.online * scenario.metrics.slot / interval

    def per_slot(servers: int) -> Pmf:
        return Pmf.binomial(round(users / servers), share)

    tiers = _requests(context, "poll", polls, per_slot, periodic=True)
    # Each poll reads all its friends' statuses; the simulator takes the reads
    # of one slot as work spread over the cache workers, close to a regular
    # stream of single reads.
    friends = context.profile.in_degree.mean()
    tiers += [
        context.cache_tier(context.reads("poll_read", polls, friends, True)),
        context.db_tier(),
    ]
    return StrategyEstimate(
        "friends",
        "poll",
        context.changes,
        polls,
        polls,
        n,
        math.nan,
        detection.mean,
        detection.p50,
        detection.p99,
        tiers,
    )


def _group_lazy_pull(context: _Context) -> StrategyEstimate:
    profile = context.profile
    visits_per_hour = context.scenario.behaviour.group_visits_per_hour
    visits = visits_per_hour / 3600.0 * context.online * profile.users
    visits *= profile.with_groups
    tiers = _requests(
        context, "pull", visits, lambda _servers: Pmf.point(1), periodic=False
    )
    # Each pull loads the group's member list and reads every member's status.
    db = context.scenario.tiers.db
    members = Stream("members", visits / db.servers, Pmf.point(1), db.members)
    tiers += [
        context.cache_tier(
            context.reads("pull_read", visits, profile.opened_group_size, False)
        ),
        context.db_tier(members),
    ]
    return StrategyEstimate(
        "groups",
        "lazy_pull",
        context.changes,
        visits,
        visits,
        None,
        math.nan,
        math.nan,
        math.nan,
        math.nan,
        tiers,
    )


def reads_files(scenario: Scenario) -> bool:
    """Whether the scenario's graph or groups come from data files."""
    return not isinstance(scenario.graph, SyntheticGraph) or (
        scenario.groups.kind == "file"
    )


def estimate_scenario(scenario: Scenario) -> Estimate:
    """Predictions for a scenario, reading its data files if it has any.

    A synthetic graph is never built: its profile comes from its parameters.
    """
    graph = None
    if reads_files(scenario):
        from sim.graph import build_graph
        from sim.randomness import stream

        graph = build_graph(
            scenario, stream(scenario.seed, "graph"), stream(scenario.seed, "groups")
        )
    return estimate(scenario, scenario_profile(scenario, graph))
