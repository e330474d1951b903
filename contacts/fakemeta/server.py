"""The stand-in served over HTTP on 127.0.0.1 (random port) in a thread: tests point
META_GRAPH_API_BASE, INSTAGRAM_TOKEN_URL and INSTAGRAM_AUTHORIZE_URL here (`settings_for`)."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

from contacts.fakemeta import GRAPH_VERSION, FakeMeta


class FakeMetaServer:
    def __init__(self, fake: FakeMeta) -> None:
        self.fake = fake

        class Handler(BaseHTTPRequestHandler):
            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length).decode() if length else ""
                parts = urlsplit(self.path)
                query = dict(parse_qsl(parts.query))
                if parts.path == "/oauth/authorize":
                    self._authorize(query)
                    return
                form, body = {}, None
                if "json" in (self.headers.get("Content-Type") or ""):
                    body = json.loads(raw or "null")
                elif raw:
                    form = dict(parse_qsl(raw))
                status, payload = fake.handle(self.command, parts.path, query, form,
                                              self.headers.get("Authorization", ""), body)
                self._send(status, json.dumps(payload).encode(), "application/json")

            def _authorize(self, query: dict) -> None:
                decision = query.get("decision")
                if decision not in ("allow", "deny"):
                    self._send(200, b"<p>Fake Instagram consent page</p>", "text/html")
                    return
                location = fake.authorize_redirect(query, username=query.get("username", "brand"),
                                                   allow=decision == "allow")
                if location is None:
                    self._send(400, b"Invalid request", "text/plain")
                    return
                self.send_response(302)
                self.send_header("Location", location)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def _send(self, status: int, data: bytes, content_type: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = _serve
            do_POST = _serve
            do_DELETE = _serve

            def log_message(self, format, *args):  # noqa: A002 - quiet test output (URLs carry tokens)
                return

        fake = self.fake
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self.httpd.server_port}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="fake-meta", daemon=True)

    def settings_for(self) -> dict:
        return {
            "META_GRAPH_API_BASE": f"{self.base_url}/graph/{GRAPH_VERSION}",
            "INSTAGRAM_TOKEN_URL": f"{self.base_url}/api/oauth/access_token",
            "INSTAGRAM_AUTHORIZE_URL": f"{self.base_url}/oauth/authorize",
        }

    def start(self) -> "FakeMetaServer":
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
