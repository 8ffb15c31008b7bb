"""The small interface every presence strategy implements, and the protocol
work every strategy shares: logins, status writes and heartbeats."""

from typing import ClassVar

import numpy as np

from sim.fanout import push
from sim.graph import Csr
from sim.metrics import StrategyMetrics
from sim.model import Event, World
from sim.protocol.chains import LOGIN_OPS, login_chain, read_statuses, status_write
from sim.tiers import Tier
from sim.workload import INVISIBLE, LOGIN

# The histogram counts handed to a kernel when its values are not counted
# (they come before the end of the warm-up).
_NOT_COUNTED = np.zeros(0, dtype=np.int64)


class Strategy:
    """How one audience (friends, groups or system messages) learns of what
    it needs to see.

    Each strategy owns its copy of the server tiers, so the load it reports is
    the load it alone would put on them, on the same workload as the others.
    Every strategy pays for the shared protocol: the login snapshot, the
    status write of each change and the heartbeats; what differs is how
    observers learn of changes.
    """

    audience: ClassVar[str]
    name: ClassVar[str]
    # Whether `on_visit` does anything; visits are not replayed otherwise.
    reacts_to_visits: ClassVar[bool] = False

    def __init__(self, world: World, tiers: dict[str, Tier]) -> None:
        self.world = world
        self.tiers = tiers
        self._bind_clocks()
        self.hop = world.scenario.network.hop_delay
        self.warmup = world.warmup
        self.sizes = world.scenario.messages
        self._header_bytes = self.sizes.header_bytes
        self._status_bytes = self.sizes.status_bytes
        self.metrics = StrategyMetrics()
        # Pushes seen by watched observers: (observer, subject, shown at,
        # status, changed at).
        self.views: list[tuple[int, int, float, int, float]] = []
        self.snapshots: list[tuple[int, float]] = []
        heartbeat = world.scenario.heartbeat
        self._beats_per_client = world.scenario.metrics.slot / heartbeat.interval
        self._present = world.present_on(tiers["gateway"].servers)
        self._beat_carry = np.zeros(tiers["gateway"].servers)
        self._login_ops = np.array(
            [tiers[tier].op_index(op) for tier, op in LOGIN_OPS], dtype=np.int64
        )
        self._random_login = any(op in tiers[tier].random_ops for tier, op in LOGIN_OPS)
        self._deliver_op = tiers["gateway"].op_index("deliver")
        self._random_deliver = "deliver" in tiers["gateway"].random_ops
        self._push_bytes = self._header_bytes + self._status_bytes
        self._write_ops = (
            tiers["presence"].op_index("change"),
            tiers["cache"].op_index("set"),
        )
        self._random_write = (
            "change" in tiers["presence"].random_ops
            or "set" in tiers["cache"].random_ops
        )

    def _bind_clocks(self) -> None:
        world = self.world
        for tier in self.tiers.values():
            tier.clock = lambda: world.env.now

    def outcome(self) -> dict:
        """What the strategy holds after a run, without the world, to be
        handed to the same strategy in another process (see `adopt`)."""
        state = dict(self.__dict__)
        del state["world"]
        return state

    def adopt(self, state: dict) -> None:
        """Take over the outcome of this strategy run elsewhere on the same
        world."""
        world = self.world
        self.__dict__.update(state)
        self.world = world
        self._bind_clocks()

    @property
    def key(self) -> tuple[str, str]:
        return (self.audience, self.name)

    def counting(self, time: float) -> bool:
        """Whether an event at `time` is past the warm-up and counts."""
        return time >= self.warmup

    # Hooks the simulation calls.

    def on_event(self, event: Event) -> None:
        """Do the server's work for a user event, then react to the change."""
        if event.kind == LOGIN:
            ready = self.login(event.time, event.user)
        else:
            ready = self.write_status(event.time, event.user)
        if event.visible:
            self.on_change(event, ready)

    def on_change(self, event: Event, ready: float) -> None:
        """React to a visible status change; the presence tier is done with
        it at `ready`."""
        if self.counting(event.time):
            self.metrics.record_change(None)

    def on_visit(
        self, index: int, time: float, user: int, group: int, close: float
    ) -> None:
        """React to a user opening one of its groups (visit `index`) until
        `close`."""

    def on_slot(self, start: float, end: float) -> None:
        """Account for periodic work in the time slot [start, end)."""
        self.heartbeats(start)

    # The shared protocol.

    def login(self, time: float, user: int) -> float:
        """Login snapshot: set the status, load the friend list, read every
        friend's status in one batch and deliver the view.

        Returns when the presence tier has processed the login, from which a
        fan-out of the login can start.
        """
        tiers = self.tiers
        friends = self.world.graph.friends
        if self._random_login:
            degree = int(friends.indptr[user + 1] - friends.indptr[user])
            for tier, op in LOGIN_OPS:
                tiers[tier].reserve(op, degree if op == "get" else 1)
        counted = time >= self.warmup
        ready, read, waited, degree = login_chain(
            tiers["gateway"].buffers,
            tiers["presence"].buffers,
            tiers["cache"].buffers,
            tiers["db"].buffers,
            self._login_ops,
            friends.indptr,
            friends.indices,
            user,
            time,
            self.hop,
            self.world.env.now,
            self.metrics.login.counts if counted else _NOT_COUNTED,
        )
        if counted:
            self.metrics.login.binned(1, waited)
            self.metrics.bytes += self._header_bytes + degree * self._status_bytes
        if self.world.watched_observer[user]:
            self.snapshots.append((user, read))
        return ready

    def write_status(self, time: float, user: int) -> float:
        """The presence tier applies a status change and writes it to the
        cache; returns when the presence tier is done."""
        presence, cache = self.tiers["presence"], self.tiers["cache"]
        if self._random_write:
            presence.reserve("change", 1)
            cache.reserve("set", 1)
        return status_write(
            presence.buffers,
            cache.buffers,
            self._write_ops[0],
            self._write_ops[1],
            user,
            time,
            self.hop,
            self.world.env.now,
        )

    def read_statuses(self, time: float, keys: Csr, row: int) -> float:
        """One batch read of the statuses of the keys in `row` of `keys`:
        one request to each cache shard holding some of them, costing one
        `get` per key; returns when the slowest shard has answered."""
        cache = self.tiers["cache"]
        cache.reserve("get", int(keys.indptr[row + 1] - keys.indptr[row]))
        return read_statuses(
            cache.buffers,
            cache.op_index("get"),
            keys.indptr,
            keys.indices,
            row,
            time,
            self.world.env.now,
        )

    def heartbeats(self, start: float) -> None:
        """Every connected client's heartbeats in this slot reach its gateway.

        The count per gateway is clients x slot / interval, with the fraction
        carried to the next slot so that none is lost.

        Limitation: heartbeats are counted per gateway and slot rather than
        sent at each client's own phase, and reach the gateway at the start
        of the slot.
        """
        due = self._present * self._beats_per_client
        due = due + self._beat_carry
        whole = np.floor(due)
        self._beat_carry = due - whole
        counts = whole.astype(np.int64)
        if counts.sum() == 0:
            return
        gateway = self.tiers["gateway"]
        gateway.serve(start, np.repeat(np.arange(len(counts)), counts), "heartbeat")
        if self.counting(start):
            self.metrics.bytes += int(counts.sum()) * self.sizes.header_bytes

    def deliver(
        self,
        time: float,
        recipients: np.ndarray,
        changed_at: float,
        subject: int,
        status: int,
    ) -> None:
        """Schedule a push of one status to `recipients` through their
        gateways, arriving there at `time`."""
        counted = self.counting(changed_at)
        if counted:
            self.metrics.messages += len(recipients)
            self.metrics.bytes += len(recipients) * self._push_bytes
        self.world.follow_up(
            time, self._arrive, time, recipients, changed_at, subject, status, counted
        )

    def _arrive(
        self,
        time: float,
        recipients: np.ndarray,
        changed_at: float,
        subject: int,
        status: int,
        counted: bool,
    ) -> None:
        """The push reaches the gateways: records latency, pushes lost to
        ghosts and the views of watched observers."""
        gateway = self.tiers["gateway"]
        if self._random_deliver:
            gateway.reserve("deliver", len(recipients))
        world = self.world
        metrics = self.metrics
        finish = np.empty(len(recipients))
        ghosts, hidden, total = push(
            gateway.buffers,
            self._deliver_op,
            recipients,
            time,
            world.present,
            world.mode,
            INVISIBLE,
            finish,
            metrics.latency.counts if counted else _NOT_COUNTED,
            self.hop - changed_at,
        )
        if counted:
            metrics.latency.binned(len(recipients), total)
            metrics.ghost_pushes += ghosts
            metrics.invisible_recipients += hidden
        if world.watched[subject]:
            shown_at = finish + self.hop
            watching = world.watched_observer[recipients]
            for observer, seen in zip(
                recipients[watching].tolist(),
                shown_at[watching].tolist(),
                strict=True,
            ):
                self.views.append((observer, subject, seen, status, changed_at))
