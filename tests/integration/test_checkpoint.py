"""The background WAL checkpointer (store.checkpoint) on a real SQLite file: while a writer with the gateway's
settings commits without pause, the thread copies the WAL into the database file (so the writer's own commits
find nothing left to checkpoint), every committed row stays readable, and the WAL stays bounded."""

from __future__ import annotations

import pathlib
import sqlite3
import threading
import time

from smsgate.store import checkpoint

ROW = "x" * 400
# a cap on the rows: on an idle machine the writer outruns SQLite's backstop (10,000 WAL frames) within the run,
# and its own automatic checkpoint would then fill the database file in the control; 8,000 rows in commits of 20
# write ~2,000 frames
MAX_ROWS = 8000


def _writer(path: pathlib.Path, stop: threading.Event, counts: list[int], max_wal: list[int]) -> None:
    """Commits without pause, as the group committer does under load, with its automatic checkpoint far off."""
    conn = sqlite3.connect(path, isolation_level=None, timeout=5.0)
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute(f"PRAGMA wal_autocheckpoint={checkpoint.BACKSTOP_PAGES}")
    wal = pathlib.Path(str(path) + "-wal")
    deadline = time.monotonic() + 20  # bounded in time as well as by ``stop``
    while not stop.is_set() and time.monotonic() < deadline and counts[0] < MAX_ROWS:
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany("INSERT INTO t (v) VALUES (?)", [(ROW,)] * 20)
        conn.execute("COMMIT")
        counts[0] += 20
        max_wal[0] = max(max_wal[0], wal.stat().st_size)
    conn.close()


def _run(tmp_path: pathlib.Path, with_checkpointer: bool) -> tuple[int, int, int, int]:
    """Rows written, rows stored, the database file's size as the writer stops, the WAL's largest size."""
    path = tmp_path / "db.sqlite"
    keep = sqlite3.connect(path, isolation_level=None)  # held open: closing the last connection checkpoints
    keep.execute("PRAGMA journal_mode=WAL")
    keep.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
    cp = checkpoint.Checkpointer(str(path), interval=0.02) if with_checkpointer else None
    if cp is not None:
        cp.start()
    stop, counts, max_wal = threading.Event(), [0], [0]
    t = threading.Thread(target=_writer, args=(path, stop, counts, max_wal))
    t.start()
    time.sleep(1.5)
    stop.set()
    t.join(30)
    time.sleep(0.2)  # the thread's next round
    db_size = path.stat().st_size
    if cp is not None:
        cp.stop()
    stored = keep.execute("SELECT count(*) FROM t").fetchone()[0]
    keep.close()
    return counts[0], stored, db_size, max_wal[0]


def test_the_thread_copies_the_wal_while_the_writer_commits(tmp_path: pathlib.Path) -> None:
    written, stored, db_size, max_wal = _run(tmp_path, with_checkpointer=True)
    assert written >= 200, "the writer was held off"
    assert stored == written
    # the database file holds the rows: the WAL was copied into it while the writer ran
    assert db_size > written * len(ROW) * 0.8, (db_size, written)
    assert max_wal < checkpoint.BACKSTOP_PAGES * 4096 * 1.2


def test_without_it_the_rows_stay_in_the_wal(tmp_path: pathlib.Path) -> None:
    """The control: with SQLite's own checkpoint far off and no thread, nothing reaches the database file."""
    written, stored, db_size, _max_wal = _run(tmp_path, with_checkpointer=False)
    assert stored == written
    assert db_size < written * len(ROW) * 0.8, (db_size, written)
