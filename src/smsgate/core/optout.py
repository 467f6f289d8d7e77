"""Opt-out as values: the keywords that stop and restart messages, and what a suppression entry holds.

An inbound message opts its sender out when its whole text, trimmed and case-folded, is one of the account's stop
keywords ("stop" and " Stop " do, "please stop" does not: a person writing a sentence is read by the application,
not by a rule); a start keyword opts them back in. Pure: the store keeps the lists, ``services.recording`` applies
this inside the inbound transaction.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Iterable, Sequence

# The usual English carrier set (CTIA, as Twilio and AWS apply it) and the Dutch AFMELDEN ("STOP" is Dutch too).
STOP_KEYWORDS = ("STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "AFMELDEN")
START_KEYWORDS = ("START", "UNSTOP")
SOURCES = ("api", "keyword", "import")
MAX_KEYWORDS = 20
MAX_KEYWORD_LENGTH = 40


class Action(enum.StrEnum):
    STOP = "stop"
    START = "start"


@dataclasses.dataclass(frozen=True, slots=True)
class Suppression:
    account_id: str
    msisdn: str  # digits, no "+"
    source: str  # one of SOURCES
    reason: str | None
    created_at: float


def _fold(text: str) -> str:
    return " ".join(text.split()).casefold()


def keywords(raw: Iterable[str]) -> tuple[str, ...]:
    """An operator's keyword list, checked: ValueError names what is wrong."""
    out = tuple(dict.fromkeys(k.strip().upper() for k in raw if k.strip()))
    if len(out) > MAX_KEYWORDS:
        raise ValueError(f"at most {MAX_KEYWORDS} keywords")
    long = [k for k in out if len(k) > MAX_KEYWORD_LENGTH]
    if long:
        raise ValueError(f"a keyword has at most {MAX_KEYWORD_LENGTH} characters: {long[0][:50]!r}")
    return out


def short(text: str | None) -> bool:
    """Whether ``text`` is short enough to be a keyword at all (longer texts skip the account's own list)."""
    return bool(text) and len(text or "") <= 4 * MAX_KEYWORD_LENGTH


def action(text: str | None, stop: Sequence[str] | None, start: Sequence[str] | None) -> Action | None:
    """STOP when the whole text is a stop keyword, START when it is a start keyword, else None."""
    if not text or not short(text):
        return None
    said = _fold(text)
    if said in {_fold(k) for k in (STOP_KEYWORDS if stop is None else stop)}:
        return Action.STOP
    if said in {_fold(k) for k in (START_KEYWORDS if start is None else start)}:
        return Action.START
    return None
