"""Time-ordered message ids and a batch's consecutive part ids (``core.ids``)."""

from __future__ import annotations

import itertools
import re
import uuid

from smsgate.core import ids


def test_message_ids_are_version_7_uuids_in_order_and_stamped_with_the_time() -> None:
    made = ids.message_ids(5000, now=1_780_000_000.123)
    assert len(set(made)) == 5000
    assert made == sorted(made)
    for text in (made[0], made[-1], ids.message_id()):
        u = uuid.UUID(text)
        assert str(u) == text and u.version == 7 and u.variant == uuid.RFC_4122
    assert int(made[0].replace("-", "")[:12], 16) == 1_780_000_000_123  # the 48-bit millisecond stamp


def test_two_calls_in_one_millisecond_make_different_ids() -> None:
    a, b = ids.message_ids(1000, now=1.0), ids.message_ids(1000, now=1.0)
    assert not set(a) & set(b)


def test_later_calls_sort_after_earlier_ones() -> None:
    assert ids.message_ids(1, now=100.0)[0] < ids.message_ids(1, now=100.002)[0]


def test_part_ids_run_on_from_a_random_start_and_keep_the_upstream_form() -> None:
    source = ids.PartIds()
    first, second = source.take(2), source.take(3)
    run = [int(p, 16) for p in first + second]
    assert all(re.fullmatch(r"[0-9A-F]{16}", p) for p in first + second)
    assert len(set(run)) == 5
    assert all((b - a) % 2**64 == 1 for a, b in itertools.pairwise(run))
    assert ids.PartIds().take(1) != ids.PartIds().take(1)
