"""Lazy pull: a group's member statuses are fetched only when it is opened."""

from sim.model import Change
from sim.protocol.base import Strategy


class GroupLazyPull(Strategy):
    """Pull member statuses on opening a group; no message per change.

    A change costs only its status write; each group visit costs one request
    through the gateway and one pull on the presence tier, answered by one
    reply carrying the members' statuses. N is not defined: no message is
    sent because of a change.

    Limitation: the pull is served at the presence tier at the moment its
    request clears the gateway, without an event of its own, so pulls and
    other presence work arriving within the same hop delay may be served out
    of arrival order.
    """

    audience = "groups"
    name = "lazy_pull"

    def on_change(self, change: Change) -> None:
        self.write_status(change)
        self.metrics.record_change(None)

    def on_visit(self, time: float, user: int, group: int) -> None:
        gateway, presence = self.tiers["gateway"], self.tiers["presence"]
        at_gateway = gateway.serve_one(time, int(gateway.server_of(user)), "request")
        presence.serve_one(at_gateway + self.hop, int(presence.server_of(user)), "pull")
        self.metrics.requests += 1
        self.metrics.messages += 1
