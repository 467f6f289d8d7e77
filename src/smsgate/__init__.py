"""smsgate: a self-hostable SMS API gateway."""

__version__ = "0.1.0"
