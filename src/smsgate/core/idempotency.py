"""Idempotency keys as values: which keys are valid, what identifies a request, and the answer kept for a replay.

A client that timed out sends the same request again with the same ``Idempotency-Key``; the gateway answers it
with the answer it stored for the first one instead of sending a second SMS (``services.idempotency``). The
request is identified by a fingerprint of what the dialect considers its content (path and body, without the
credentials or a signature's timestamp), so the same key with other content is told apart from a retry.
"""

from __future__ import annotations

import dataclasses
import hashlib

from smsgate.errors import ValidationError

HEADER = "idempotency-key"
REPLAYED = "idempotent-replayed"
MAX_KEY = 255


@dataclasses.dataclass(frozen=True, slots=True)
class StoredResponse:
    """An answer as it went out: status, headers (without Content-Length) and the body's exact bytes."""

    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes


def parse_key(raw: str) -> str:
    """The key as given: 1-255 printable ASCII characters (a UUID is the usual choice)."""
    if not 1 <= len(raw) <= MAX_KEY or not all(" " <= c <= "~" for c in raw):
        raise ValidationError(f"Idempotency-Key must be 1 to {MAX_KEY} printable ASCII characters").at(
            "Idempotency-Key"
        )
    return raw


def fingerprint(*pieces: bytes | str) -> str:
    """A digest of a request's identifying pieces (each length-prefixed, so no two splits collide)."""
    h = hashlib.sha256()
    for piece in pieces:
        data = piece.encode() if isinstance(piece, str) else piece
        h.update(len(data).to_bytes(8, "big"))
        h.update(data)
    return h.hexdigest()
