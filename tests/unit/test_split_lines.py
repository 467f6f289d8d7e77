"""The jobs a split node's accept process hands over fit the link's lines however many one commit claims."""

from __future__ import annotations

import base64
import pickle

from smsgate import link, split
from smsgate.dispatch import jobs


def _job(i: int, size: int) -> jobs.Job:
    return jobs.Job(f"m{i}", "acc", "smsc", 0.0, 0.0, [], {}, recipient=str(i) * size)


def test_a_large_handover_is_split_into_lines_that_fit() -> None:
    handed = [_job(i, 20_000) for i in range(300)]  # ~6 MB pickled: far more than one line holds
    lines = split._job_lines(handed)
    assert len(lines) > 1
    assert all(len(p) < link.MAX_LINE for p in lines)
    back = [j for p in lines for j in pickle.loads(base64.b64decode(p))]
    assert [j.message_id for j in back] == [j.message_id for j in handed] and back[7].recipient == handed[7].recipient


def test_a_small_handover_is_one_line() -> None:
    assert len(split._job_lines([_job(i, 10) for i in range(50)])) == 1
