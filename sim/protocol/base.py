"""The small interface every presence strategy implements."""

from typing import ClassVar

from sim.metrics import StrategyMetrics
from sim.model import Change, World
from sim.tiers import Tier


class Strategy:
    """How one audience (friends or groups) learns about status changes.

    Each strategy owns its copy of the server tiers, so the load it reports is
    the load it alone would put on them, on the same workload as the others.
    Every strategy pays for the status write of each change on the presence
    tier; what differs is how observers learn of it.
    """

    audience: ClassVar[str]
    name: ClassVar[str]

    def __init__(self, world: World, tiers: dict[str, Tier]) -> None:
        self.world = world
        self.tiers = tiers
        self.hop = world.scenario.network.hop_delay
        self.metrics = StrategyMetrics()

    @property
    def key(self) -> tuple[str, str]:
        return (self.audience, self.name)

    def on_change(self, change: Change) -> None:
        """React to a login or logout."""

    def on_visit(self, time: float, user: int, group: int) -> None:
        """React to a user opening one of its groups."""

    def on_slot(self, start: float, end: float) -> None:
        """Account for periodic work in the time slot [start, end)."""

    def write_status(self, change: Change) -> float:
        """The presence tier applies the change; returns when it is done."""
        presence = self.tiers["presence"]
        return presence.serve_one(
            change.time, presence.server_of(change.user), "change"
        )
