"""Push: the server sends each change to every online observer at once."""

import numpy as np

from sim.model import Change
from sim.protocol.base import Strategy


class Push(Strategy):
    """Fan a change out through the gateway tier to its online observers.

    The presence tier applies the change, then hands the whole fan-out to the
    gateways one network hop later; each gateway delivers its share in FIFO
    order. Latency runs from the change to the delivery at the client.
    """

    name = "push"

    def recipients(self, change: Change) -> np.ndarray:
        raise NotImplementedError

    def on_change(self, change: Change) -> None:
        recipients = self.recipients(change)
        count = len(recipients)
        self.metrics.record_change(count)
        self.metrics.messages += count
        done = self.write_status(change)
        if count == 0:
            return

        gateway = self.tiers["gateway"]
        arrival = done + self.hop
        changed_at = change.time

        def deliver() -> None:
            finish = gateway.serve(arrival, gateway.server_of(recipients), "deliver")
            self.metrics.latency.add(finish + self.hop - changed_at)

        self.world.at(arrival, deliver)


class FriendPush(Push):
    """Push to online reverse friends: those who have the user in their list."""

    audience = "friends"

    def recipients(self, change: Change) -> np.ndarray:
        return change.friend_observers()


class GroupPush(Push):
    """Push to the online members of each of the user's groups, per group."""

    audience = "groups"

    def recipients(self, change: Change) -> np.ndarray:
        return change.group_recipients()
