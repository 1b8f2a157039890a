"""``Unet-Matting-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<raw body>">``.

The scheme integrators know from payment providers: the timestamp is signed with the body, so a
receiver that rejects old timestamps rejects replays. ``verify`` is what a receiver does (the
README shows it in a few lines of its own).
"""

from __future__ import annotations

import hashlib
import hmac

HEADER = "Unet-Matting-Signature"
TOLERANCE_S = 300  # a receiver rejects signatures older (or newer) than this: 5 minutes


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The header's value for ``body`` sent at ``timestamp``."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def verify(header: str, body: bytes, secret: str, now: float, tolerance_s: float = TOLERANCE_S) -> bool:
    """True when ``header`` signs ``body`` with ``secret`` within ``tolerance_s`` of ``now``."""
    try:
        fields = dict(part.split("=", 1) for part in header.split(","))
        timestamp = int(fields["t"])
    except (KeyError, ValueError):
        return False
    if abs(now - timestamp) > tolerance_s:
        return False
    return hmac.compare_digest(sign(secret, timestamp, body), f"t={timestamp},v1={fields.get('v1', '')}")
