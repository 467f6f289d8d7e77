"""The opt-out keyword rule: the whole text, trimmed and case-folded, is the keyword."""

from __future__ import annotations

import pytest

from smsgate.core import optout


@pytest.mark.parametrize("text", ["STOP", " stop ", "Stop\n", "afmelden", "StopAll", "UNSUBSCRIBE"])
def test_stop_words(text: str) -> None:
    assert optout.action(text, None, None) is optout.Action.STOP


@pytest.mark.parametrize("text", ["START", " unstop"])
def test_start_words(text: str) -> None:
    assert optout.action(text, None, None) is optout.Action.START


@pytest.mark.parametrize("text", ["please stop", "STOP!", "stopped", "", None, "STOP " * 100])
def test_anything_else_is_a_message(text: str | None) -> None:
    assert optout.action(text, None, None) is None


def test_an_accounts_own_keywords_replace_the_defaults() -> None:
    own = optout.keywords(["halt", " Stop Now "])
    assert own == ("HALT", "STOP NOW")
    assert optout.action("stop  now", own, ()) is optout.Action.STOP
    assert optout.action("STOP", own, ()) is None
    assert optout.action("START", own, ()) is None


def test_keyword_lists_are_bounded() -> None:
    with pytest.raises(ValueError, match="at most 20"):
        optout.keywords([f"W{i}" for i in range(21)])
    with pytest.raises(ValueError, match="at most 40 characters"):
        optout.keywords(["x" * 41])


def test_our_api_refuses_a_suppressed_recipient_with_422() -> None:
    import orjson

    from smsgate import errors
    from smsgate.api import messages

    r = messages.render_error(None, errors.Suppressed("the recipient has opted out"), None)  # type: ignore[arg-type]
    assert r.status_code == 422
    assert orjson.loads(bytes(r.body)) == {"error": {"code": "suppressed", "message": "the recipient has opted out"}}
    assert messages.render_error(None, errors.DestinationNotAllowed(), None).status_code == 403  # type: ignore[arg-type]
