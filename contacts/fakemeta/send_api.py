"""A stand-in for Meta's Send API for load: POST /<version>/<account id>/messages answered after a fixed
delay (150 ms by default, as Meta answers), every call recorded with its time, account, token and
recipient, so tests and benches can read what Meta would have seen: calls per account per second, the
most in any one-second window, the most in flight at once, who got how many messages.

Served on 127.0.0.1 in threads (one per connection, keep-alive), started and stopped by its owner:

    with SendApiStandIn(delay=0.15) as meta:
        settings.META_GRAPH_API_BASE = meta.base_url
        ...
        meta.max_in_any_second(account_id)

`throttle(account_id, times, code=4)` makes the next `times` calls of an account answer as Meta does
when it throttles (HTTP 400 with the code, or 429 for code 429). Nothing here reaches the network.
"""

import bisect
import json
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass(frozen=True, slots=True)
class Call:
    at: float  # time.time() when the request arrived
    account_id: str
    token: str
    recipient: str  # the IGSID, or "comment:<id>" for a private reply
    text: str
    status: int


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 512


class SendApiStandIn:
    def __init__(self, *, delay: float = 0.15, host: str = "127.0.0.1", port: int = 0) -> None:
        self.delay = delay
        self.calls: list[Call] = []
        self._lock = threading.Lock()
        self._in_flight = 0
        self.max_in_flight = 0
        self._throttles: dict[str, list[int]] = defaultdict(list)
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive: the senders reuse their connections

            def do_POST(self):  # http.server's naming
                arrived = time.time()
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                status, body = stand_in._answer(self.path, self.headers.get("Authorization", ""), raw, arrived)
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):  # GET /me: the token check the fan-out makes before a batch
                data = json.dumps({"user_id": "17841400000000000", "username": "stand_in"}).encode()
                status = 200 if self.path.split("?")[0].endswith("/me") else 404
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = _Server((host, port), Handler)
        self.base_url = f"http://{host}:{self.server.server_port}/v21.0"
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="send-api-stand-in", daemon=True)

    # --- serving ----------------------------------------------------------------------------------------

    def _answer(self, path: str, authorization: str, raw: bytes, arrived: float) -> tuple[int, dict]:
        parts = path.strip("/").split("/")
        if len(parts) < 2 or parts[-1] != "messages":
            return 404, {"error": {"message": "Unknown path", "code": 100}}
        account_id = parts[-2]
        try:
            body = json.loads(raw or b"null") or {}
        except ValueError:
            return 400, {"error": {"message": "Invalid JSON", "code": 100}}
        recipient = body.get("recipient") or {}
        to = str(recipient.get("id") or f"comment:{recipient.get('comment_id', '')}")
        text = str((body.get("message") or {}).get("text", ""))
        with self._lock:
            self._in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self._in_flight)
            throttled = self._throttles[account_id].pop(0) if self._throttles.get(account_id) else None
        try:
            time.sleep(self.delay)
        finally:
            with self._lock:
                self._in_flight -= 1
        if throttled is not None:
            status = 429 if throttled == 429 else 400
            code = 4 if status == 429 else throttled
            answer = {"error": {"message": "Application request limit reached", "code": code}}
        with self._lock:
            self.calls.append(Call(arrived, account_id, authorization.removeprefix("Bearer "), to, text,
                                   200 if throttled is None else status))
            number = len(self.calls)  # unique: taken under the lock
        if throttled is None:
            status, answer = 200, {"recipient_id": to, "message_id": f"mid.{account_id}.{number}"}
        return status, answer

    def throttle(self, account_id: str, times: int = 1, *, code: int = 4) -> None:
        with self._lock:
            self._throttles[account_id].extend([code] * times)

    def start(self) -> "SendApiStandIn":
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> "SendApiStandIn":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # --- what Meta saw -----------------------------------------------------------------------------------

    def accepted(self, account_id: str | None = None) -> list[Call]:
        with self._lock:
            calls = list(self.calls)
        return [c for c in calls if c.status == 200 and (account_id is None or c.account_id == account_id)]

    def per_second(self, account_id: str | None = None) -> dict[int, int]:
        """Calls that arrived in each whole second (Unix time), accepted or not."""
        with self._lock:
            calls = list(self.calls)
        return dict(sorted(Counter(int(c.at) for c in calls
                                   if account_id is None or c.account_id == account_id).items()))

    def max_in_any_second(self, account_id: str | None = None, *, span: float = 1.0) -> int:
        """The most calls that arrived within any `span` seconds (a sliding window over arrival times)."""
        with self._lock:
            times = sorted(c.at for c in self.calls if account_id is None or c.account_id == account_id)
        best = 0
        for i, start in enumerate(times):
            best = max(best, bisect.bisect_left(times, start + span, lo=i) - i)
        return best

    def messages_per_recipient(self, account_id: str | None = None) -> Counter:
        return Counter(c.recipient for c in self.accepted(account_id))
