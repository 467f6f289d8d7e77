"""Pure text-and-numbers rules shared by every dialect and connector (no I/O)."""

from __future__ import annotations
