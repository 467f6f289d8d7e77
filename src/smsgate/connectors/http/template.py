"""Templates and field paths for the generic ``http`` connector, checked when the config is read.

A template is text with placeholders (``{to}``, ``{text}``...; ``{{``/``}}`` for a literal brace). Each
placeholder is escaped for where it lands: URL-encoded in the URL and in a form body, JSON-escaped in a JSON
string body, as is in a raw body. A path picks a value out of a JSON answer or callback: ``$.result.ids[0]``
(``$``, ``.name``, ``[index]``), or a plain name for a form field or query parameter.
"""

from __future__ import annotations

import dataclasses
import re
import string
import urllib.parse
from collections.abc import Callable, Mapping
from typing import Any

import orjson

from smsgate.errors import did_you_mean

PLACEHOLDERS = {
    "to": "destination, E.164 digits without +",
    "to_plus": "destination with a leading +",
    "from": "sender as given (alphanumeric or digits)",
    "text": "the message text (the upstream splits it)",
    "id": "our message id (also the network id when the answer gives none)",
    "coding": "gsm7 or ucs2",
    "parts": "how many SMS parts we counted",
    "validity": "seconds the message may wait, or empty",
    "callback": "our receipt receiver URL (SMSGATE_PUBLIC_URL), with the receipt token",
}
_PATH_STEP = re.compile(r"\.([A-Za-z_][\w-]*)|\[(\d+)\]")
Escape = Callable[[str], str]


def url_escape(value: str) -> str:
    return urllib.parse.quote(value, safe="")


def json_escape(value: str) -> str:
    return orjson.dumps(value).decode()[1:-1]


def no_escape(value: str) -> str:
    return value


@dataclasses.dataclass(frozen=True, slots=True)
class Template:
    """Literal text and placeholders, in order."""

    pieces: tuple[tuple[str, str | None], ...]  # (literal, placeholder or None)

    @classmethod
    def parse(cls, key: str, raw: str) -> Template:
        try:
            parsed = list(string.Formatter().parse(raw))
        except ValueError as exc:
            raise ValueError(f"{key!r}: {exc} (write {{{{ and }}}} for a literal brace)") from None
        pieces = []
        for literal, field, spec, conversion in parsed:
            if field is not None:
                if field not in PLACEHOLDERS:
                    raise ValueError(f"{key!r}: unknown placeholder {{{field}}}{did_you_mean(field, PLACEHOLDERS)}")
                if spec or conversion:
                    raise ValueError(f"{key!r}: {{{field}}} takes no format or conversion")
            pieces.append((literal, field))
        return cls(tuple(pieces))

    def render(self, values: Mapping[str, str], escape: Escape) -> str:
        return "".join(literal + (escape(values[field]) if field else "") for literal, field in self.pieces)


def parse_tree(key: str, value: Any) -> Any:
    """A TOML value whose strings are templates (a JSON or form body given as a table)."""
    if isinstance(value, str):
        return Template.parse(key, value)
    if isinstance(value, Mapping):
        return {str(k): parse_tree(f"{key}.{k}", v) for k, v in value.items()}
    if isinstance(value, list):
        return [parse_tree(f"{key}[{i}]", v) for i, v in enumerate(value)]
    return value


def render_tree(tree: Any, values: Mapping[str, str]) -> Any:
    if isinstance(tree, Template):
        return tree.render(values, no_escape)
    if isinstance(tree, dict):
        return {k: render_tree(v, values) for k, v in tree.items()}
    if isinstance(tree, list):
        return [render_tree(v, values) for v in tree]
    return tree


@dataclasses.dataclass(frozen=True, slots=True)
class Path:
    """Where a value sits: a JSON path subset, or a plain field name."""

    steps: tuple[str | int, ...]

    @classmethod
    def parse(cls, key: str, raw: str) -> Path:
        if not raw.startswith("$"):
            if not raw:
                raise ValueError(f"{key!r}: must not be empty")
            return cls((raw,))
        rest, steps = raw[1:], []
        while rest:
            m = _PATH_STEP.match(rest)
            if m is None:
                raise ValueError(f"{key!r}: {raw!r} is not a path such as $.result.ids[0]")
            steps.append(m.group(1) if m.group(1) is not None else int(m.group(2)))
            rest = rest[m.end() :]
        if not steps:
            raise ValueError(f"{key!r}: the path names no field")
        return cls(tuple(steps))

    def find(self, data: Any) -> Any:
        """The value at this path, or None when it is not there."""
        for step in self.steps:
            if isinstance(step, int):
                if not isinstance(data, list) or step >= len(data):
                    return None
                data = data[step]
            else:
                if not isinstance(data, Mapping) or step not in data:
                    return None
                data = data[step]
        return data
