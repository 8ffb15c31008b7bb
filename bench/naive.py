"""A naive reference model: SimPy events per notification.

It runs the same protocol on the same workload as presence-sim's friend or
group push, but delivers every push message as its own SimPy process that
requests a worker of the recipient's gateway server (a `simpy.Resource`),
holds it for the service time and releases it: the usual SimPy idiom for a
message through a server, about five SimPy events per notification (the
process's start and end, the request, the timeout). It exists to measure how
much the batch delivery saves; it is not part of the tool.
"""

import numpy as np
import simpy

from sim.model import Event, World
from sim.protocol.push import FriendPush, GroupPush
from sim.tiers import Tier


class PerMessageDelivery:
    """Per-message delivery through gateway servers modelled as resources."""

    world: World
    tiers: dict[str, Tier]
    hop: float

    def _setup_resources(self) -> None:
        gateway = self.world.scenario.tiers.gateway
        self._servers = [
            simpy.Resource(self.world.env, capacity=gateway.workers)
            for _ in range(gateway.servers)
        ]
        self._service = gateway.deliver.mean
        self.delivered = 0
        self.latency_total = 0.0

    def _one(self, server: int, changed_at: float):
        with self._servers[server].request() as slot:
            yield slot
            yield self.world.env.timeout(self._service)
        self.delivered += 1
        self.latency_total += self.world.env.now + self.hop - changed_at

    def deliver(
        self,
        time: float,
        recipients: np.ndarray,
        changed_at: float,
        subject: int,
        status: int,
    ) -> None:
        env = self.world.env
        servers = (recipients % len(self._servers)).tolist()

        def start(_event: simpy.Event) -> None:
            for server in servers:
                env.process(self._one(server, changed_at))

        env.timeout(max(0.0, time - env.now)).callbacks.append(start)
        self.metrics.messages += len(recipients)


class NaiveFriendPush(PerMessageDelivery, FriendPush):
    def __init__(self, world: World, tiers: dict[str, Tier]) -> None:
        FriendPush.__init__(self, world, tiers)
        self._setup_resources()


class NaiveGroupPush(PerMessageDelivery, GroupPush):
    def __init__(self, world: World, tiers: dict[str, Tier]) -> None:
        GroupPush.__init__(self, world, tiers)
        self._setup_resources()


NAIVE = {"friends": NaiveFriendPush, "groups": NaiveGroupPush}

__all__ = ["NAIVE", "Event"]
