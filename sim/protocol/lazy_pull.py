"""Lazy pull: a group's member statuses are fetched only when it is opened."""

import numpy as np

from sim.model import Event, World
from sim.protocol.base import Strategy
from sim.tiers import Tier


class GroupLazyPull(Strategy):
    """Pull member statuses on opening a group, and optionally every
    `group_refresh_interval` while it stays open; no message per change.

    A pull is a request through the gateway, a pull on the presence tier, a
    member-list load from the relation db (skipped while a list loaded less
    than `member_list_ttl` ago is still cached), one cache read per member,
    and one reply carrying the members' statuses. N is not defined: no
    message is sent because of a change.
    """

    audience = "groups"
    name = "lazy_pull"
    reacts_to_visits = True

    def __init__(self, world: World, tiers: dict[str, Tier]) -> None:
        super().__init__(world, tiers)
        strategies = world.scenario.strategies
        self.refresh = strategies.group_refresh_interval
        self.ttl = strategies.member_list_ttl
        self._list_loaded = np.full(world.graph.members.rows, -np.inf)
        self.list_loads = 0
        self.pulls: list[tuple[int, float]] = []

    def on_change(self, event: Event, ready: float) -> None:
        if self.counting(event.time):
            self.metrics.record_change(None)

    def on_visit(
        self, index: int, time: float, user: int, group: int, close: float
    ) -> None:
        self.pull(index, time, user, group)
        if self.refresh > 0:
            # Each refresh is a user action of its own: one event per pull.
            again = time + self.refresh
            end = min(close, self.world.workload.duration)
            while again < end:
                self.world.at(
                    again,
                    lambda at=again: self.pull(index, at, user, group),
                )
                again += self.refresh

    def pull(self, index: int, time: float, user: int, group: int) -> None:
        gateway, presence = self.tiers["gateway"], self.tiers["presence"]
        db = self.tiers["db"]
        hop = self.hop
        at_gateway = gateway.serve_one(time, int(gateway.server_of(user)), "request")
        ready = presence.serve_one(
            at_gateway + hop, int(presence.server_of(user)), "pull"
        )
        if time - self._list_loaded[group] >= self.ttl or self.ttl == 0:
            ready = db.serve_one(ready + hop, group % db.servers, "members")
            self._list_loaded[group] = time
            if self.counting(time):
                self.list_loads += 1
        members = self.world.graph.members
        read = self.read_statuses(ready + hop, members, group)
        gateway.serve_one(read + hop, int(gateway.server_of(user)), "deliver")
        if self.world.watched_visit(index):
            self.pulls.append((index, read))
        if self.counting(time):
            self.metrics.requests += 1
            self.metrics.messages += 1
            self.metrics.bytes += 2 * self.sizes.header_bytes + int(
                members.indptr[group + 1] - members.indptr[group]
            ) * (self.sizes.status_bytes)
