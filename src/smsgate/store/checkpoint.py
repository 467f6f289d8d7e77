"""SQLite's WAL checkpoints in a background thread, off the event loop.

By default SQLite checkpoints inside the commit that pushes the WAL past 1,000 pages: that commit then copies
the WAL into the database file and fsyncs it, on the group committer's connection, i.e. on the event loop —
measured at ~4.5 % of the gateway's wall time under a KPN load (py-spy --native, 2 cores), while nothing else
(HTTP, SMPP) could run. Here a thread with its own connection runs ``PRAGMA wal_checkpoint(PASSIVE)``
every ``interval``: a passive checkpoint never takes the write lock, so commits go on beside it, and the sqlite3
module releases the GIL while SQLite copies and fsyncs, so the loop keeps running.

Durability is unchanged: a commit is durable once its WAL frames are fsync'd (``synchronous=FULL``); a
checkpoint only moves committed pages into the main file, and SQLite recovers from the WAL after a crash.
A passive checkpoint cannot make the writer start the WAL from its beginning again (under load a commit always
lands while it runs), so the writer keeps SQLite's automatic checkpoint as the bound, at ``BACKSTOP_PAGES``
instead of 1,000: when it fires, the thread has already copied nearly every frame, so the commit that runs it
has little left to copy, and the WAL restarts after it. The WAL file stays bounded (~40 MB at 4 KiB pages).
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import threading

log = logging.getLogger(__name__)

# the writer's automatic checkpoint, kept as the bound on the WAL's size (see above)
BACKSTOP_PAGES = 10_000


class Checkpointer:
    """``start()`` the thread; ``stop()`` ends it after one last checkpoint."""

    def __init__(self, path: str, *, interval: float = 0.1) -> None:
        self.path = path
        self.interval = interval
        self.checkpoints = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="sqlite-checkpoint", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._thread is None:
            return
        self._stop.set()
        self._thread.join(10)
        self._thread = None

    def _run(self) -> None:
        conn = sqlite3.connect(self.path, timeout=5.0, isolation_level=None, check_same_thread=False)
        try:
            conn.execute("PRAGMA busy_timeout=100")  # a passive checkpoint waits for nobody; this is for opening
            while True:
                stopping = self._stop.wait(self.interval)
                try:
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                    self.checkpoints += 1
                except sqlite3.Error as exc:  # a store outage: the next round tries again, commits are unaffected
                    log.warning("WAL checkpoint failed: %s", exc)
                if stopping:
                    return
        finally:
            with contextlib.suppress(sqlite3.Error):
                conn.close()
