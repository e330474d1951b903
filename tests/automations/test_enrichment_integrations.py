"""Data enrichment and outgoing webhooks: through the gate, signed, retried, paused at the limit."""

import hashlib
import hmac
import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from automations.models import EnrichmentJob, IntegrationDelivery, PausedAction
from automations.services import enrichment_job_create, integration_create, integration_push, scenario_create
from billing.activation import activate_many
from billing.models import ActivationRecord
from billing.services import bonus_grant
from contacts.models import Contact
from inro.errors import ApplicationError
from tests.factories import ContactFactory

pytestmark = pytest.mark.django_db


def test_enrichment_fills_profiles_and_pauses_at_the_limit(free_workspace, django_capture_on_commit_callbacks):
    ws = free_workspace
    activate_many(ws, ContactFactory.create_batch(98, workspace=ws), kind="campaign")
    targets = ContactFactory.create_batch(4, workspace=ws)

    with django_capture_on_commit_callbacks(execute=True):
        job = enrichment_job_create(workspace=ws, contact_ids=[c.pk for c in targets])

    job.refresh_from_db()
    assert (job.status, job.enriched_count, job.limited_count) == ("done", 2, 2)
    enriched = Contact.objects.filter(pk__in=[c.pk for c in targets], enriched_at__isnull=False)
    assert set(enriched.values_list("pk", flat=True)) == {targets[0].pk, targets[1].pk}
    first = enriched.get(pk=targets[0].pk)
    expected = int.from_bytes(hashlib.sha256(first.igsid.encode()).digest()[:4], "big") % 50_000
    assert (first.follower_count, first.biography) == (expected, f"Instagram creator @{first.username}")
    assert ActivationRecord.objects.filter(kind="enrichment", automation_ref=f"enrichment:{job.pk}").count() == 2

    with django_capture_on_commit_callbacks(execute=True):
        bonus_grant(workspace=ws, amount=2, reason="more", granted_by=None)
    job.refresh_from_db()
    assert (job.enriched_count, job.limited_count) == (4, 0)
    assert Contact.objects.filter(pk__in=[c.pk for c in targets], enriched_at__isnull=True).count() == 0


def test_enrichment_refuses_other_workspace_contacts(free_workspace):
    with pytest.raises(ApplicationError):
        enrichment_job_create(workspace=free_workspace, contact_ids=[ContactFactory().pk])
    with pytest.raises(ApplicationError):
        enrichment_job_create(workspace=free_workspace, contact_ids=[])
    assert not EnrichmentJob.objects.exists()


class Receiver:
    """A local HTTP server on 127.0.0.1 that answers with the queued status codes, then 200."""

    def __init__(self, codes=()):
        self.codes = list(codes)
        self.requests = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # http.server's API
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests.append((dict(self.headers), body))
                self.send_response(receiver.codes.pop(0) if receiver.codes else 200)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    servers = []

    def make(codes=()):
        servers.append(Receiver(codes))
        return servers[-1]

    yield make
    for server in servers:
        server.close()


def test_push_is_signed_retried_with_backoff_and_delivered_once(free_workspace, receiver,
                                                                  django_capture_on_commit_callbacks):
    server = receiver(codes=[500, 503])
    integration = integration_create(workspace=free_workspace, name="CRM", url=server.url)
    contact = ContactFactory(workspace=free_workspace, username="ana", email="ana@example.test")

    with django_capture_on_commit_callbacks(execute=True):
        delivery = integration_push(integration=integration, contact=contact, event="contact.updated",
                                    idempotency_key="k1")
    with django_capture_on_commit_callbacks(execute=True):
        again = integration_push(integration=integration, contact=contact, event="contact.updated",
                                 idempotency_key="k1")

    delivery.refresh_from_db()
    assert again.pk == delivery.pk
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("delivered", 3, 200)
    assert len(server.requests) == 3
    headers, body = server.requests[-1]
    expected = "sha256=" + hmac.new(integration.secret.encode(), body, hashlib.sha256).hexdigest()
    assert headers["X-Inro-Signature"] == expected
    payload = json.loads(body)
    assert (payload["event"], payload["contact"]["username"], payload["contact"]["email"]) == (
        "contact.updated", "ana", "ana@example.test")
    assert ActivationRecord.objects.get(contact=contact).kind == "integration"


def test_push_gives_up_after_the_retries(free_workspace, receiver, django_capture_on_commit_callbacks):
    server = receiver(codes=[500] * 20)
    integration = integration_create(workspace=free_workspace, name="Down", url=server.url)
    contact = ContactFactory(workspace=free_workspace)

    with django_capture_on_commit_callbacks(execute=True):
        delivery = integration_push(integration=integration, contact=contact, event="x", idempotency_key="k")

    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.last_error) == ("failed", 7, "HTTP 500")
    assert len(server.requests) == 7


def test_push_at_the_limit_is_paused_and_scenario_step_calls_it(free_workspace, receiver, fire,
                                                                django_capture_on_commit_callbacks):
    server = receiver()
    integration = integration_create(workspace=free_workspace, name="Zap", url=server.url)
    activate_many(free_workspace, ContactFactory.create_batch(100, workspace=free_workspace), kind="campaign")
    contact = ContactFactory(workspace=free_workspace)

    assert integration_push(integration=integration, contact=contact, event="x", idempotency_key="k") is None
    assert PausedAction.objects.get().action_type == "integration_push" and server.requests == []

    with django_capture_on_commit_callbacks(execute=True):
        bonus_grant(workspace=free_workspace, amount=1, reason="more", granted_by=None)
    assert IntegrationDelivery.objects.get().status == "delivered" and len(server.requests) == 1

    scenario_create(workspace=free_workspace, name="Sync", trigger_type="dm_keyword",
                    trigger_config={"keywords": ["sync"]},
                    steps=[{"type": "call_integration", "integration_id": integration.pk}])
    fire(contact, text="sync", meta_id="m.1")
    assert IntegrationDelivery.objects.filter(status="delivered").count() == 2 and len(server.requests) == 2


def test_integration_url_must_be_http(free_workspace):
    for url in ("ftp://example.test/x", "file:///etc/passwd", "not a url"):
        with pytest.raises(ApplicationError):
            integration_create(workspace=free_workspace, name="Bad", url=url)
