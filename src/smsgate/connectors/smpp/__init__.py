"""SMPP v3.4 connector: a thin asyncio session over a ``struct`` codec (see specs/smpp-libraries.md)."""

from __future__ import annotations
