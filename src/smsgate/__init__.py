"""smsgate: a self-hostable SMS API gateway."""

from smsgate.version import VERSION as __version__

__all__ = ["__version__"]
