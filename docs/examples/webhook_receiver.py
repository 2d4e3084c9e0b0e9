"""A minimal Facemint webhook receiver that verifies every delivery (standard library only).

Run it with your account's webhook secret::

    FACEMINT_WEBHOOK_SECRET=whsec_... python webhook_receiver.py --port 8000

It answers ``204`` to a delivery whose signature and timestamp are valid, ``401`` otherwise, and ``400`` to a body
that is not JSON. Each accepted delivery is printed as one JSON line; a delivery id seen before is acknowledged
again but not processed twice. Put it behind HTTPS (a reverse proxy) for real use: Facemint only calls https URLs.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import os
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MAX_AGE_SECONDS = 5 * 60
MAX_BODY_BYTES = 64 * 1024 * 1024


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """Hex HMAC-SHA256 of ``"{timestamp}.{raw body}"`` keyed by the webhook secret."""
    return hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


def verify(secret: str, headers: dict[str, str], body: bytes, now: float | None = None) -> str | None:
    """Check a delivery; return why it must be rejected, or ``None`` when it is authentic and fresh.

    Both ``X-Facemint-Signature`` (the current secret) and, during a secret rotation, ``X-Facemint-Signature-Previous``
    (the secret before it) are accepted, so the receiver can switch secrets at its own pace.
    """
    timestamp = headers.get("x-facemint-timestamp", "")
    if not timestamp.isdigit():
        return "missing or malformed X-Facemint-Timestamp"
    if abs((now or time.time()) - int(timestamp)) > MAX_AGE_SECONDS:
        return "timestamp is more than 5 minutes away from now (replayed or delayed delivery)"
    expected = signature(secret, timestamp, body)
    for header in ("x-facemint-signature", "x-facemint-signature-previous"):
        received = headers.get(header, "")
        if received and hmac.compare_digest(expected, received):  # constant-time comparison
            return None
    return "signature does not match"


class Handler(BaseHTTPRequestHandler):
    """Handles POSTs from Facemint."""

    secret = ""
    seen: set[str] = set()

    def do_POST(self) -> None:  # noqa: N802 - http.server API
        """Verify, de-duplicate and process one delivery."""
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY_BYTES:
            self.answer(413)
            return
        body = self.rfile.read(length)  # verify the raw bytes, before any JSON parsing
        headers = {key.lower(): value for key, value in self.headers.items()}
        reason = verify(self.secret, headers, body)
        if reason is not None:
            print(json.dumps({"rejected": reason}), flush=True)
            self.answer(401)
            return
        try:
            payload = json.loads(body)
        except ValueError:
            self.answer(400)
            return
        delivery_id = headers.get("x-facemint-delivery", "")
        if delivery_id in self.seen:
            self.answer(204)  # a retry of a delivery already processed: acknowledge, do nothing
            return
        self.seen.add(delivery_id)
        print(
            json.dumps(
                {
                    "verified": True,
                    "delivery_id": delivery_id,
                    "event": payload["event"],
                    "task_id": payload["task_id"],
                    "status": payload["status"],
                }
            ),
            flush=True,
        )
        self.answer(204)

    def answer(self, status: int) -> None:
        """Send an empty response."""
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - http.server API
        """Keep stdout for the JSON lines."""


def main() -> None:
    """Serve until interrupted."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args()
    secret = os.environ.get("FACEMINT_WEBHOOK_SECRET", "")
    if not secret:
        sys.exit("set FACEMINT_WEBHOOK_SECRET to your account's webhook secret")
    Handler.secret = secret
    server = ThreadingHTTPServer((args.host, args.port), Handler)
    print(json.dumps({"listening": f"http://{args.host}:{server.server_address[1]}/"}), flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
