"""Loading the command's modules without the cyclic garbage collector running through them.

A start of ``smsgate serve`` imports some 800 modules (FastAPI, SQLAlchemy, pydantic...), which allocate hundreds of
thousands of objects that all live as long as the process. CPython's collector, triggered by those allocations,
walks the growing heap again and again meanwhile: about 0.2 s of a 1.1 s start. Importing leaves next to no
garbage, so the collector waits until the imports are done, and what they made is then frozen out of its later
passes (``gc.freeze``: modules, classes and functions live as long as the process)."""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator


@contextlib.contextmanager
def without_gc() -> Iterator[None]:
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if enabled:
            gc.enable()
