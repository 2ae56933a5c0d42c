"""Webhook signature verification, as in the tutorial: ``X-OpenClaw-Signature`` is the hex
HMAC-SHA256 of the exact body bytes, keyed with the endpoint's secret."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any, Mapping, Optional, Union


def verify_webhook(
    payload: Union[bytes, bytearray, memoryview, str, Mapping[str, Any]],
    signature: Optional[str],
    secret: Union[str, bytes],
) -> bool:
    """True when ``signature`` (the ``X-OpenClaw-Signature`` header) is the HMAC-SHA256 of
    ``payload`` with ``secret``, compared in constant time.

    Pass the raw request body. A parsed JSON object is accepted too and hashed as compact JSON
    (what the server sends, and what the tutorial's receiver rebuilds with ``JSON.stringify``);
    the raw bytes are the safer choice. A missing or malformed signature gives ``False``.
    """
    if not isinstance(signature, str) or not signature:
        return False
    if not secret:
        raise ValueError("verify_webhook: the webhook secret is empty")
    if isinstance(payload, str):
        body = payload.encode("utf-8")
    elif isinstance(payload, (bytes, bytearray, memoryview)):
        body = bytes(payload)
    else:
        body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    key = secret.encode("utf-8") if isinstance(secret, str) else secret
    expected = hmac.new(key, body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(signature.strip().lower().encode("ascii", "replace"), expected.encode("ascii"))
