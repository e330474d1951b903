"""The Graph API send backend against a local HTTP server standing in for Meta (never a real host)."""

import datetime
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests
from django.utils import timezone

from contacts.messaging import DeliveryError, send_message
from contacts.meta import GraphBackend, GraphClient
from contacts.models import InstagramConnection, Message
from contacts.pacing import backoff_remaining
from tests.factories import ContactFactory, connect_instagram

pytestmark = pytest.mark.django_db


class FakeGraph:
    """Answers POSTs with the queued (status, body, headers) in order, then 200s; records requests."""
    def __init__(self):
        self.responses: list[tuple[int, dict | str, dict]] = []
        self.requests: list[dict] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # http.server's naming
                length = int(self.headers.get("Content-Length") or 0)
                fake.requests.append({
                    "path": self.path, "authorization": self.headers.get("Authorization"),
                    "json": json.loads(self.rfile.read(length) or b"null"),
                })
                status, body, headers = (
                    fake.responses.pop(0) if fake.responses
                    else (200, {"recipient_id": "r", "message_id": f"mid.{len(fake.requests)}"}, {})
                )
                raw = body.encode() if isinstance(body, str) else json.dumps(body).encode()
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self.server.server_port}/v21.0"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def queue(self, status, body=None, headers=None):
        self.responses.append((status, body if body is not None else {}, headers or {}))


ACCOUNT_ID = "17841400000000999"
TOKEN = "IGAAtestworkspacetoken"


@pytest.fixture
def graph(settings, workspace):
    fake = FakeGraph()
    fake.thread.start()
    settings.META_GRAPH_API_BASE = fake.base_url
    connect_instagram(workspace, account_id=ACCOUNT_ID, token=TOKEN)
    settings.META_GRAPH_MAX_ATTEMPTS = 3
    settings.META_GRAPH_RETRY_BASE_SECONDS = 0.5
    settings.META_GRAPH_TIMEOUT_SECONDS = 5
    yield fake
    fake.server.shutdown()
    fake.server.server_close()


@pytest.fixture
def sleeps(monkeypatch):
    """Backoff delays asked for, without waiting (the pacer's few-millisecond spreading of sends is
    not a back-off: left out)."""
    asked: list[float] = []
    monkeypatch.setattr("contacts.meta.time.sleep", lambda seconds: asked.append(seconds) if seconds >= 0.05 else None)
    return asked


def _message(workspace, **kwargs):
    contact = ContactFactory(workspace=workspace, igsid="1122334455667788")
    return Message.objects.create(workspace=workspace, contact=contact, direction="out", origin="automated",
                                  status="queued", text="Hello there", **kwargs)


def test_a_dm_is_posted_from_the_workspace_account_with_its_own_bearer_token(workspace, graph, sleeps):
    graph.queue(200, {"recipient_id": "1122334455667788", "message_id": "aWdfZAG1fmid001"})

    mid = GraphBackend().deliver(_message(workspace))

    assert mid == "aWdfZAG1fmid001"
    assert graph.requests == [{
        "path": f"/v21.0/{ACCOUNT_ID}/messages", "authorization": f"Bearer {TOKEN}",
        "json": {"recipient": {"id": "1122334455667788"}, "message": {"text": "Hello there"}},
    }]
    assert sleeps == []


def test_a_private_reply_is_addressed_to_the_comment(workspace, graph, sleeps):
    GraphBackend().deliver(_message(workspace, reply_to_comment_id="17865799348089039"))

    assert graph.requests[0]["json"] == {"recipient": {"comment_id": "17865799348089039"},
                                         "message": {"text": "Hello there"}}


def test_503_is_retried_with_backoff_then_succeeds(workspace, graph, sleeps):
    graph.queue(503, {"error": {"message": "Service temporarily unavailable", "code": 2}})
    graph.queue(503, "upstream down")
    graph.queue(200, {"recipient_id": "1122334455667788", "message_id": "mid.third"})

    assert GraphBackend().deliver(_message(workspace)) == "mid.third"
    assert len(graph.requests) == 3
    assert sleeps == [0.5, 1.0]


def test_429_honours_retry_after_for_the_whole_account(workspace, graph, sleeps):
    graph.queue(429, {"error": {"message": "Calls to this api have exceeded the rate limit.", "code": 4}},
                {"Retry-After": "7"})

    assert GraphBackend().deliver(_message(workspace)) == "mid.2"
    assert len(sleeps) == 1 and 6.5 < sleeps[0] <= 7.0
    # Every worker sees the account backed off, not only the one that was throttled.
    assert 6 < backoff_remaining(ACCOUNT_ID) <= 7


@pytest.mark.parametrize("code", [4, 17, 32, 613])
def test_metas_throttling_codes_back_the_account_off_and_are_sent_after(workspace, graph, sleeps, settings, code):
    settings.META_THROTTLE_BACKOFF_SECONDS = 30
    graph.queue(400, {"error": {"message": "Application request limit reached", "code": code}})

    assert GraphBackend().deliver(_message(workspace)) == "mid.2"
    assert len(graph.requests) == 2
    assert len(sleeps) == 1 and 29 < sleeps[0] <= 30
    assert backoff_remaining(ACCOUNT_ID) > 29


def test_gives_up_after_the_bounded_number_of_attempts(workspace, graph, sleeps):
    for _ in range(3):
        graph.queue(500, {"error": {"message": "An unknown error occurred", "code": 1}})

    with pytest.raises(DeliveryError) as error:
        GraphBackend().deliver(_message(workspace))

    assert str(error.value) == (
        "Gave up after 3 attempts: Meta refused the request (HTTP 500, code 1): An unknown error occurred"
    )
    assert len(graph.requests) == 3
    assert sleeps == [0.5, 1.0]


def test_a_400_fails_at_once_without_retrying(workspace, graph, sleeps):
    graph.queue(400, {"error": {"message": "This message is sent outside of allowed window.", "code": 10,
                                "error_subcode": 2534022}})

    with pytest.raises(DeliveryError) as error:
        GraphBackend().deliver(_message(workspace))

    assert "HTTP 400, code 10" in str(error.value)
    assert len(graph.requests) == 1
    assert sleeps == []


def test_timeouts_are_retried(workspace, graph, sleeps):
    class Silent:
        def __init__(self):
            self.calls = 0

        def post(self, url, *, timeout, **kwargs):
            self.calls += 1
            if self.calls == 1:
                raise requests.Timeout("read timed out")
            return requests.post(url, timeout=timeout, **kwargs)

    session = Silent()
    client = GraphClient(session=session, sleep=sleeps.append)

    assert GraphBackend(client).deliver(_message(workspace)) == "mid.1"
    assert session.calls == 2
    assert sleeps == [0.5]


def test_a_success_without_message_id_is_a_delivery_error(workspace, graph, sleeps):
    graph.queue(200, {"recipient_id": "1122334455667788"})

    with pytest.raises(DeliveryError, match="no message id"):
        GraphBackend().deliver(_message(workspace))


def test_without_a_connected_account_nothing_is_sent(workspace, graph, settings, sleeps):
    InstagramConnection.objects.filter(workspace=workspace).delete()

    with pytest.raises(DeliveryError, match="no Instagram account connected"):
        GraphBackend().deliver(_message(workspace))
    assert graph.requests == []


# --- through send_message: the window rules hold with the graph backend too -----------------

@pytest.fixture
def graph_backend(settings, graph):
    settings.INSTAGRAM_SEND_BACKEND = "graph"
    return graph


def test_send_message_through_graph_records_the_meta_mid(workspace, graph_backend, sleeps):
    contact = ContactFactory(workspace=workspace, last_inbound_at=timezone.now() - datetime.timedelta(hours=1))
    graph_backend.queue(200, {"recipient_id": contact.igsid, "message_id": "aWdfZAG1fsent"})

    result = send_message(workspace=workspace, contact=contact, text="Your code: WINTER10", origin="automated",
                          idempotency_key="scenario:1:step:1:contact:1")

    assert (result.status, result.message.meta_mid, result.message.status) == ("sent", "aWdfZAG1fsent", "sent")
    assert result.message.sent_at is not None
    again = send_message(workspace=workspace, contact=contact, text="Your code: WINTER10", origin="automated",
                         idempotency_key="scenario:1:step:1:contact:1")
    assert again.duplicate and len(graph_backend.requests) == 1


def test_automated_message_outside_the_window_never_reaches_meta(workspace, graph_backend, sleeps):
    contact = ContactFactory(workspace=workspace, last_inbound_at=timezone.now() - datetime.timedelta(hours=25))

    result = send_message(workspace=workspace, contact=contact, text="Promo", origin="automated")

    assert result.status == "skipped_window"
    assert graph_backend.requests == []


def test_private_reply_within_seven_days_goes_out_but_a_dm_does_not(workspace, graph_backend, sleeps):
    # Commented 6 days ago, never wrote a message: one private reply, no DM.
    contact = ContactFactory(workspace=workspace, last_inbound_at=None,
                             last_comment_at=timezone.now() - datetime.timedelta(days=6))

    reply = send_message(workspace=workspace, contact=contact, text="Check your DMs", origin="automated",
                         reply_to_comment_id="17865799348089039")
    dm = send_message(workspace=workspace, contact=contact, text="Promo", origin="automated")

    assert (reply.status, dm.status) == ("sent", "skipped_window")
    assert [r["json"]["recipient"] for r in graph_backend.requests] == [{"comment_id": "17865799348089039"}]


def test_meta_refusing_marks_the_message_failed(workspace, graph_backend, sleeps):
    contact = ContactFactory(workspace=workspace, last_inbound_at=timezone.now())
    graph_backend.queue(403, {"error": {"message": "The user can't receive messages.", "code": 551}})

    result = send_message(workspace=workspace, contact=contact, text="Hi", origin="automated")

    assert result.status == "failed"
    assert result.message.status == "failed" and result.message.sent_at is None
    assert result.message.error == "Meta refused the request (HTTP 403, code 551): The user can't receive messages."
