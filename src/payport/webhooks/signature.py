"""Stripe's webhook signature scheme: `t=<unix>,v1=<hex HMAC-SHA256("{t}.{body}")>`."""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Sequence

from payport.errors import InvalidSignature


def compute_signature(secret: str, timestamp: int, payload: bytes) -> str:
    signed = f"{timestamp}.".encode() + payload
    return hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def signature_header(secret: str, payload: bytes, *, timestamp: int | None = None) -> str:
    """The `Stripe-Signature` header value a provider sends with `payload`."""
    ts = int(time.time()) if timestamp is None else timestamp
    return f"t={ts},v1={compute_signature(secret, ts, payload)}"


def _parse_header(header: str) -> tuple[int, list[str]]:
    timestamp: int | None = None
    signatures: list[str] = []
    for item in header.split(","):
        key, sep, value = item.strip().partition("=")
        if not sep:
            continue
        if key == "t":
            try:
                timestamp = int(value)
            except ValueError:
                raise InvalidSignature("malformed timestamp in Stripe-Signature") from None
        elif key == "v1":
            signatures.append(value)
    if timestamp is None or not signatures:
        raise InvalidSignature("Stripe-Signature needs t= and at least one v1=")
    return timestamp, signatures


def verify_signature(
    payload: bytes,
    header: str | None,
    secrets: Sequence[str],
    *,
    tolerance_s: int = 300,
    now_s: float | None = None,
) -> int:
    """Check the header against every secret (rotation); return the signed timestamp."""
    if not header:
        raise InvalidSignature("missing Stripe-Signature header")
    if not secrets:
        raise InvalidSignature("no webhook secret is configured")
    timestamp, candidates = _parse_header(header)
    current = time.time() if now_s is None else now_s
    if timestamp < current - tolerance_s:
        raise InvalidSignature("signature timestamp is outside the tolerance")
    for secret in secrets:
        expected = compute_signature(secret, timestamp, payload)
        if any(hmac.compare_digest(expected, candidate) for candidate in candidates):
            return timestamp
    raise InvalidSignature("no signature matches the payload")
