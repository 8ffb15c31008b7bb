"""Push: the server sends each change to every connected observer at once."""

import numpy as np

from sim.model import Event
from sim.protocol.base import Strategy


class Push(Strategy):
    """Fan a change out through the gateway tier to its connected observers.

    The presence tier applies the change, then hands the whole fan-out to the
    gateways one network hop later; each gateway delivers its share in FIFO
    order. Latency runs from the change to the delivery at the client.
    Invisible observers are connected, so they receive pushes and count in N;
    ghosts (clients gone, heartbeat timeout pending) do too, and their pushes
    are counted as lost.
    """

    name = "push"

    def recipients(self, event: Event) -> np.ndarray:
        raise NotImplementedError

    def on_change(self, event: Event, ready: float) -> None:
        recipients = self.recipients(event)
        if self.counting(event.time):
            self.metrics.record_change(len(recipients))
        if len(recipients):
            self.deliver(
                ready + self.hop, recipients, event.time, event.user, event.new
            )


class FriendPush(Push):
    """Push to connected reverse friends: those who have the user in their
    friend list."""

    audience = "friends"

    def recipients(self, event: Event) -> np.ndarray:
        return event.friend_observers()


class GroupPush(Push):
    """Push to the connected members of each of the user's groups, one
    message per group (a member of two shared groups gets two)."""

    audience = "groups"

    def recipients(self, event: Event) -> np.ndarray:
        return event.group_recipients()


class GroupPushDedup(Push):
    """Push once to each distinct connected member of any of the user's
    groups."""

    audience = "groups"
    name = "push_dedup"

    def recipients(self, event: Event) -> np.ndarray:
        return np.unique(event.group_recipients())
