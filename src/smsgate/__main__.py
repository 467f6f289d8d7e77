"""``python -m smsgate`` runs the CLI."""

from smsgate.cli import app

app()
