"""Webhook signatures, always over the raw bytes: re-serialised JSON would not match."""

from __future__ import annotations

import hashlib
import hmac

from kapso_whatsapp.webhooks import verify_signature as verify_meta_signature

__all__ = ["kapso_signature", "verify_kapso_signature", "verify_meta_signature"]


def kapso_signature(secret: str, raw_body: bytes) -> str:
    """Kapso's X-Webhook-Signature: bare hex HMAC-SHA256 of the body."""
    return hmac.new(secret.encode(), raw_body, hashlib.sha256).hexdigest()


def verify_kapso_signature(secret: str, raw_body: bytes, header: str | None) -> bool:
    if not header:
        return False
    expected = kapso_signature(secret, raw_body)
    return hmac.compare_digest(expected, header.strip().lower())
