"""A Keyward webhook receiver: checks each signature with `standardwebhooks`, then prints it.

    pip install standardwebhooks
    KEYWARD_WEBHOOK_SECRET=whsec_… python docs/webhook_receiver.py [port]

Answer 2xx quickly and do the work afterwards: Keyward waits 15 seconds, then retries.
Delivery is at least once, so deduplicate on `webhook-id` (here in memory; keep it in a
table or Redis for a few days in real life).
"""

import json
import os
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer

from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

webhook = Webhook(os.environ["KEYWARD_WEBHOOK_SECRET"])
seen: set[str] = set()


class Receiver(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            # Checks the signature (either of two during a secret's rotation) and that
            # webhook-timestamp is within 5 minutes, which stops replays.
            event = webhook.verify(body, dict(self.headers))
        except WebhookVerificationError:
            self.send_response(400)
            self.end_headers()
            return
        if event["id"] not in seen:
            seen.add(event["id"])
            key = event["data"].get("key") or {}
            print(event["type"], key.get("prefix", ""), json.dumps(event["data"]), flush=True)
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


if __name__ == "__main__":
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 9000
    print(f"Listening on http://127.0.0.1:{port}/", flush=True)
    HTTPServer(("127.0.0.1", port), Receiver).serve_forever()
