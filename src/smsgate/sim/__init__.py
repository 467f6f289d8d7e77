"""Simulators of the network side (an SMSC) for tests, demos and benchmarks."""

from __future__ import annotations
