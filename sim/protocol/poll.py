"""Poll: every connected client asks for its audience's statuses every T."""

import numpy as np

from sim.fanout import keys_per_shard
from sim.graph import Csr
from sim.model import Event, World
from sim.protocol.base import Strategy
from sim.randomness import stream
from sim.tiers import Tier

# The second CSR of a poller whose keys are one row of the first.
NO_INDPTR = np.zeros(0, dtype=np.int64)
NO_INDICES = np.zeros(0, dtype=np.int32)


class Poll(Strategy):
    """Statuses by polling, with a random phase per user.

    User u polls at phase(u) + kT while its client is connected. Polls are not
    SimPy events: each load slot finds its pollers by a range search over the
    sorted phases, and each change computes when each observer's next poll
    will see it. An observer whose client leaves before that poll never
    learns of the change and is not counted in N. A poll is a request through
    the gateway, a poll on the presence tier, one cache read per key and one
    reply; a reply is empty when no key changed since the previous poll.

    Limitation: the latency of a poll is the wait until the next poll; the
    request's own round trip through the tiers is not added to it.
    Limitation: polls of one load slot reach the tiers together at the start
    of the slot, which overstates their queueing when the slot is long, and
    their cache reads are taken as a fluid spread over the cache workers
    rather than as single requests.
    Limitation: a poll that follows two changes of the same user counts both
    as detected, although the observer only sees the later status.
    Limitation: whether a reply is empty is decided when the poll's load slot
    starts, so a change later in the same slot is missed by polls of that
    slot.
    """

    name = "poll"
    interval: float

    def __init__(self, world: World, tiers: dict[str, Tier], interval: float) -> None:
        super().__init__(world, tiers)
        self.interval = interval
        rng = stream(
            world.scenario.seed,
            "poll",
            0 if self.audience == "friends" else 1,
            replication=world.replication,
        )
        self.phase = rng.random(world.graph.users) * interval
        self._by_phase = np.argsort(self.phase, kind="stable")
        self._sorted_phase = self.phase[self._by_phase]
        # When a key of each user last changed: its poll has news if later
        # than its previous poll.
        self._news_at = np.full(world.graph.users, -np.inf)
        self._shard_keys: np.ndarray | None = None

    def observers(self, event: Event) -> np.ndarray:
        raise NotImplementedError

    def key_holders(self, event: Event) -> np.ndarray:
        """Every user (connected or not) that has the event's user among its
        keys."""
        raise NotImplementedError

    def key_rows(self) -> tuple[Csr, Csr | None]:
        """Where a poller's keys are: its row of the first CSR, or, with a
        second CSR, the rows of the second that its row of the first names."""
        raise NotImplementedError

    def next_poll(self, users: np.ndarray, time: float) -> np.ndarray:
        """The first poll of each user at or after `time`."""
        return time + np.mod(self.phase[users] - time, self.interval)

    def client_end(self, users: np.ndarray) -> np.ndarray:
        """When each user's current client session ends."""
        return self.world.workload.sessions.end[self.world.session[users]]

    def on_change(self, event: Event, ready: float) -> None:
        self._news_at[self.key_holders(event)] = event.time
        if not self.counting(event.time):
            return
        observers = self.observers(event)
        observers = observers[self.world.present[observers]]
        polls = self.next_poll(observers, event.time)
        seen = polls <= self.client_end(observers)
        self.metrics.record_change(int(seen.sum()))
        self.metrics.latency.add(polls[seen], -event.time)

    def pollers(self, start: float, end: float) -> np.ndarray:
        """Connected users whose poll falls in [start, end), for end - start <= T."""
        low = start % self.interval
        high = low + (end - start)
        phases = self._sorted_phase
        first = np.searchsorted(phases, low)
        if high <= self.interval:
            users = self._by_phase[first : np.searchsorted(phases, high)]
        else:
            wrapped = np.searchsorted(phases, high - self.interval)
            users = np.concatenate([self._by_phase[first:], self._by_phase[:wrapped]])
        return users[self.world.present[users]]

    def on_slot(self, start: float, end: float) -> None:
        super().on_slot(start, end)
        users = self.pollers(start, end)
        if len(users) == 0:
            return
        gateway, presence, cache = (
            self.tiers["gateway"],
            self.tiers["presence"],
            self.tiers["cache"],
        )
        hop = self.hop
        gateway.serve(start, gateway.server_of(users), "request")
        presence.serve(start + hop, presence.server_of(users), "poll")
        # Each poll sends one batch read to every shard holding its keys; the
        # reads are taken by the cache as a fluid.
        held = self._keys_per_shard(cache.servers)[users]
        keys = held.sum(axis=0, dtype=np.int64)
        cache.absorb(
            start + 2 * hop,
            (held > 0).sum(axis=0),
            keys * cache.mean_service("get"),
            "get",
        )
        gateway.serve(start + 3 * hop, gateway.server_of(users), "deliver")
        if not self.counting(start):
            return

        # A reply is empty when no key changed since the poller's last poll
        # (or its login, if that came later).
        poll_time = start + np.mod(self.phase[users] - start, self.interval)
        logged_in = self.world.workload.sessions.start[self.world.session[users]]
        since = np.maximum(poll_time - self.interval, logged_in)
        self.metrics.empty_polls += int((self._news_at[users] <= since).sum())
        self.metrics.requests += len(users)
        self.metrics.messages += len(users)
        self.metrics.bytes += len(users) * 2 * self.sizes.header_bytes + int(
            keys.sum()
        ) * (self.sizes.status_bytes)

    def _keys_per_shard(self, shards: int) -> np.ndarray:
        """Each user's keys per shard of a cache of `shards` shards, counted
        once."""
        if self._shard_keys is None or self._shard_keys.shape[1] != shards:
            first, second = self.key_rows()
            self._shard_keys = keys_per_shard(
                first.indptr,
                first.indices,
                second.indptr if second is not None else NO_INDPTR,
                second.indices if second is not None else NO_INDICES,
                shards,
            )
        return self._shard_keys


class FriendPoll(Poll):
    """Every connected client polls all its friends' statuses every T."""

    audience = "friends"

    def __init__(self, world: World, tiers: dict[str, Tier]) -> None:
        super().__init__(world, tiers, world.scenario.strategies.poll_interval)

    def observers(self, event: Event) -> np.ndarray:
        return event.friend_observers()

    def key_holders(self, event: Event) -> np.ndarray:
        return self.world.graph.reverse.row(event.user)

    def key_rows(self) -> tuple[Csr, Csr | None]:
        return self.world.graph.friends, None


class GroupPoll(Poll):
    """Every connected client polls the members of all its groups every T,
    one entry per (group, member)."""

    audience = "groups"

    def __init__(self, world: World, tiers: dict[str, Tier]) -> None:
        super().__init__(world, tiers, world.scenario.strategies.group_poll_interval)

    def observers(self, event: Event) -> np.ndarray:
        return event.group_recipients()

    def key_holders(self, event: Event) -> np.ndarray:
        graph = self.world.graph
        return graph.members.gather(graph.groups.row(event.user))

    def key_rows(self) -> tuple[Csr, Csr | None]:
        return self.world.graph.groups, self.world.graph.members
