"""The fake served over HTTP on 127.0.0.1 (random port) in a thread: tests point STRIPE_API_BASE here."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from billing.fakestripe import FakeStripe


class FakeStripeServer:
    def __init__(self) -> None:
        self.fake = FakeStripe()
        fake = self.fake

        class Handler(BaseHTTPRequestHandler):
            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length).decode() if length else ""
                path, _, query = self.path.partition("?")
                status, payload = fake.handle(
                    self.command, path, body or query,
                    idempotency_key=self.headers.get("Idempotency-Key", ""),
                    authorization=self.headers.get("Authorization", ""),
                    stripe_version=self.headers.get("Stripe-Version", ""),
                )
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.send_header("Request-Id", "req_fake")
                self.end_headers()
                self.wfile.write(data)

            do_GET = _serve
            do_POST = _serve
            do_DELETE = _serve

            def log_message(self, format, *args):  # quiet test output
                return

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self.httpd.server_port}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="fake-stripe", daemon=True)

    def start(self) -> "FakeStripeServer":
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
