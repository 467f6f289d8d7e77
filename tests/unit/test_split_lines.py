"""The jobs a split node's accept process hands over fit the link's lines however many one commit claims, and cross
whole: every field of a job and of its parts comes out as it went in."""

from __future__ import annotations

from smsgate import link, split
from smsgate.connectors import base
from smsgate.core import message, routing
from smsgate.dispatch import jobs


def _job(i: int, size: int) -> jobs.Job:
    return jobs.Job(f"m{i}", "acc", "smsc", 0.0, 0.0, [], {}, recipient=str(i) * size)


def test_a_large_handover_is_split_into_lines_that_fit() -> None:
    handed = [_job(i, 20_000) for i in range(300)]  # ~6 MB: far more than one line holds
    lines = split._job_lines(handed)
    assert len(lines) > 1
    assert all(len(p) < link.MAX_LINE for p in lines)
    back = [j for p in lines for j in split._jobs_of(p)]
    assert back == handed


def test_a_small_handover_is_one_line() -> None:
    assert len(split._job_lines([_job(i, 10) for i in range(50)])) == 1


def test_every_field_crosses() -> None:
    """No field left at its default, so one the encoding dropped or misplaced would show."""
    parts = [
        base.OutboundPart(f"P{n}", "m1", "Bench", 5, 0, "31612345678", 8, b"\x05\x00\x03\x07\x02" + bytes([n]),
                          "hé".encode("utf-16-be"), n, 2, 7, registered_delivery=False, validity_seconds=600,
                          expires_at=1e9 + 600, protocol_id=64, message_class=1, account_id="acc_1")
        for n in (1, 2)
    ]  # fmt: skip
    job = jobs.Job(
        "m1", "acc_1", "smsc", 1e9, 1e9 + 600, parts, {"P1": message.Status.SUBMITTED, "P2": message.Status.ACCEPTED},
        attempts=3, recipient="+31612345678", country="NL", dialect="kpn", route=routing.Route(("smsc", "backup")),
        tried={"backup"}, lane=0, scheduled=True,
    )  # fmt: skip
    (back,) = [j for p in split._job_lines([job]) for j in split._jobs_of(p)]
    assert back == job
    assert back.part_status["P1"] is message.Status.SUBMITTED and back.parts[1].udh == parts[1].udh
