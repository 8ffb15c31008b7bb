"""presence-sim: simulate and size presence (online-status) sync for IM services."""

from sim.errors import PresenceSimError

__all__ = ["PresenceSimError"]
__version__ = "0.1.0"
