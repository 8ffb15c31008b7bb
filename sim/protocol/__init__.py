"""The presence protocol, one module per strategy behind one interface."""

from sim.protocol.base import Strategy
from sim.protocol.lazy_pull import GroupLazyPull
from sim.protocol.poll import FriendPoll, GroupPoll
from sim.protocol.push import FriendPush, GroupPush, GroupPushDedup
from sim.protocol.system import SystemPull, SystemPush

STRATEGIES: dict[tuple[str, str], type[Strategy]] = {
    (cls.audience, cls.name): cls
    for cls in (
        FriendPush,
        FriendPoll,
        GroupPush,
        GroupPushDedup,
        GroupPoll,
        GroupLazyPull,
        SystemPush,
        SystemPull,
    )
}

__all__ = ["STRATEGIES", "Strategy"]
