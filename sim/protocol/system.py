"""System messages and splash ads: broadcast by push, or pulled at login."""

import math

import numpy as np

from sim.metrics import LogHistogram
from sim.model import Event, World
from sim.protocol.base import Strategy
from sim.scenario import SystemMessage
from sim.tiers import Tier
from sim.workload import LOGIN


class Broadcast:
    """What happened to one system message under one delivery mode."""

    def __init__(self, message: SystemMessage, users: int) -> None:
        self.message = message
        self.received = np.zeros(users, dtype=bool)
        self.pending = np.zeros(users, dtype=bool)
        self.delay = LogHistogram()
        self.at_send = 0
        self.lost_to_ghosts = 0
        self.requests = 0

    @property
    def expires_at(self) -> float:
        return self.message.at + self.message.expires

    def live(self, time: float) -> bool:
        return self.message.at <= time < self.expires_at


class SystemBroadcastBase(Strategy):
    """Shared bookkeeping of the two delivery modes."""

    audience = "system"

    def __init__(self, world: World, tiers: dict[str, Tier]) -> None:
        super().__init__(world, tiers)
        users = world.graph.users
        self.broadcasts = [
            Broadcast(message, users) for message in world.scenario.system_messages
        ]

    def deliver_at_login(self, broadcast: Broadcast, time: float, user: int) -> None:
        """One request and one reply at login, e.g. the pull of a message."""
        gateway = self.tiers["gateway"]
        at_gateway = gateway.serve_one(time, int(gateway.server_of(user)), "request")
        done = gateway.serve_one(
            at_gateway + self.hop, int(gateway.server_of(user)), "deliver"
        )
        broadcast.requests += 1
        self.delivered(broadcast, user, done)

    def delivered(self, broadcast: Broadcast, user: int, done: float) -> None:
        """Count one copy of a message reaching `user`, sent off at `done`."""
        broadcast.received[user] = True
        broadcast.delay.add_one(done + self.hop - broadcast.message.at)
        self.metrics.messages += 1
        self.metrics.bytes += self.sizes.header_bytes + self.sizes.system_bytes


class SystemPush(SystemBroadcastBase):
    """Push the message to every connected client at once; store it for the
    rest until they log in or it expires. What is still stored at expiry is
    junk. Connected ghosts get it too, and it is lost.

    Limitation: a message whose expiry falls after the end of the run counts
    what is still stored at the end as junk.
    """

    name = "push"

    def __init__(self, world: World, tiers: dict[str, Tier]) -> None:
        super().__init__(world, tiers)
        for broadcast in self.broadcasts:
            world.at(broadcast.message.at, lambda b=broadcast: self.send(b))

    def send(self, broadcast: Broadcast) -> None:
        world = self.world
        time = broadcast.message.at
        recipients = np.flatnonzero(world.connected)
        gateway = self.tiers["gateway"]
        finish = gateway.serve(
            time + self.hop, gateway.server_of(recipients), "deliver"
        )
        broadcast.delay.add(finish, self.hop - time)
        broadcast.received[recipients] = True
        broadcast.at_send = len(recipients)
        broadcast.lost_to_ghosts = int((~world.present[recipients]).sum())
        broadcast.pending = ~world.connected
        self.metrics.messages += len(recipients)
        self.metrics.bytes += len(recipients) * (
            self.sizes.header_bytes + self.sizes.system_bytes
        )

    def on_event(self, event: Event) -> None:
        super().on_event(event)
        if event.kind != LOGIN:
            return
        for broadcast in self.broadcasts:
            if broadcast.pending[event.user] and broadcast.live(event.time):
                broadcast.pending[event.user] = False
                gateway = self.tiers["gateway"]
                done = gateway.serve_one(
                    event.time, int(gateway.server_of(event.user)), "deliver"
                )
                self.delivered(broadcast, event.user, done)

    def junk(self, broadcast: Broadcast) -> int:
        return int(broadcast.pending.sum())


class SystemPull(SystemBroadcastBase):
    """Each client asks for current system messages when it logs in; users
    already connected when a message appears see it at their next login."""

    name = "pull"

    def on_event(self, event: Event) -> None:
        super().on_event(event)
        if event.kind != LOGIN:
            return
        for broadcast in self.broadcasts:
            if broadcast.live(event.time) and not broadcast.received[event.user]:
                self.deliver_at_login(broadcast, event.time, event.user)

    def junk(self, broadcast: Broadcast) -> int:
        return 0


def broadcast_rows(strategies: list[Strategy]) -> list[dict[str, object]]:
    """One row per (message, mode) for the system_messages table."""
    rows = []
    for strategy in strategies:
        if not isinstance(strategy, SystemBroadcastBase):
            continue
        gateway = strategy.tiers["gateway"]
        slot = strategy.world.scenario.metrics.slot
        for index, broadcast in enumerate(strategy.broadcasts):
            first = int(broadcast.message.at / slot)
            last = int(
                math.ceil(
                    min(broadcast.expires_at, strategy.world.workload.duration) / slot
                )
            )
            window = gateway.rates()[first : max(last, first + 1)]
            delivered = int(broadcast.received.sum())
            rows.append(
                {
                    "message": index,
                    "mode": strategy.name,
                    "at_s": broadcast.message.at,
                    "expires_s": broadcast.message.expires,
                    "users": len(broadcast.received),
                    "delivered": delivered,
                    "delivered_at_send": broadcast.at_send,
                    "junk": strategy.junk(broadcast),
                    "lost_to_ghosts": broadcast.lost_to_ghosts,
                    "not_reached": len(broadcast.received) - delivered,
                    "peak_gateway_rps": float(window.max()) if len(window) else 0.0,
                    "delay_mean_s": broadcast.delay.mean(),
                    "delay_p50_s": broadcast.delay.quantile(0.5),
                    "delay_p99_s": broadcast.delay.quantile(0.99),
                }
            )
    return rows
