"""smsgate: a self-hostable SMS API gateway."""

from typing import Any


def __getattr__(name: str) -> Any:
    """``smsgate.__version__``, read from the installed metadata only when asked (importing the core stays light)."""
    if name == "__version__":
        from smsgate.version import VERSION

        return VERSION
    raise AttributeError(name)
