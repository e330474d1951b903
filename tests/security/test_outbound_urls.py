"""No request to internal addresses: a customer's integration URL is refused when it names or resolves
to a loopback, private, link-local, multicast or reserved address, when it is entered (saying why)
and when it is called (after DNS changes: the connection goes to the checked address; redirects are
not followed). No test needs the internet: IP literals, and the resolver patched at the edge."""

import socket
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from automations.admin import IntegrationAdmin, IntegrationForm
from automations.models import Integration, IntegrationDelivery
from automations.services import integration_create, integration_push
from inro import outbound
from inro.errors import ApplicationError
from tests.factories import ContactFactory, WorkspaceFactory

pytestmark = pytest.mark.django_db

INTERNAL = [
    ("http://127.0.0.1/hook", "loopback"),
    ("http://127.1.2.3:8080/hook", "loopback"),
    ("http://169.254.169.254/latest/meta-data/", "link-local"),
    ("http://10.0.0.1/", "private"),
    ("http://172.16.5.4/", "private"),
    ("https://192.168.1.1/", "private"),
    ("http://[::1]/", "loopback"),
    ("http://[::ffff:127.0.0.1]/", "loopback"),
    ("http://[fd00::1]/", "private"),
    ("http://[fe80::1]/", "link-local"),
    ("http://224.0.0.1/", "multicast"),
    ("http://240.0.0.1/", "reserved"),
    ("http://0.0.0.0/", "unspecified"),
    ("http://100.64.0.1/", "not a public internet address"),
]


@pytest.fixture(autouse=True)
def _no_exemptions(settings):
    settings.OUTBOUND_ALLOWED_NETWORKS = []


def _resolver(monkeypatch, answers: dict[str, list[str]]):
    """socket.getaddrinfo answering from `answers` (a list is consumed one answer per call, the last repeats)."""
    calls = []
    real = socket.getaddrinfo

    def fake(host, port, *args, **kwargs):
        if host not in answers:
            return real(host, port, *args, **kwargs)  # IP literals resolve without any network
        calls.append(host)
        queue = answers[host]
        address = queue.pop(0) if len(queue) > 1 else queue[0]
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        return [(family, socket.SOCK_STREAM, 6, "", (address, port))]

    monkeypatch.setattr(socket, "getaddrinfo", fake)
    return calls


class Receiver:
    def __init__(self, status=200, location=""):
        self.requests = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests.append(dict(self.headers))
                self.send_response(status)
                if location:
                    self.send_header("Location", location)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_port
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receivers():
    made = []
    yield lambda **kw: made.append(Receiver(**kw)) or made[-1]
    for receiver in made:
        receiver.close()


@pytest.mark.parametrize(("url", "kind"), INTERNAL)
def test_an_internal_address_is_refused_when_entered_saying_why(url, kind):
    workspace = WorkspaceFactory()

    with pytest.raises(ApplicationError) as refused:
        integration_create(workspace=workspace, name="Sneaky", url=url)

    assert refused.value.status == 400 and refused.value.code == "unsafe_url"
    assert kind in refused.value.fields["url"][0]
    assert Integration.objects.count() == 0


def test_a_host_name_resolving_to_an_internal_address_is_refused(monkeypatch):
    _resolver(monkeypatch, {"metadata.attacker.test": ["169.254.169.254"]})

    with pytest.raises(ApplicationError) as refused:
        integration_create(workspace=WorkspaceFactory(), name="Sneaky", url="http://metadata.attacker.test/")

    assert refused.value.fields["url"] == [
        "metadata.attacker.test resolves to 169.254.169.254 is a link-local address; the server only calls "
        "public internet addresses."]


def test_a_name_with_one_public_and_one_internal_address_is_refused(monkeypatch):
    def fake(host, port, *args, **kwargs):
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.216.34", port)),
                (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.1.2.3", port))]

    monkeypatch.setattr(socket, "getaddrinfo", fake)

    with pytest.raises(outbound.UnsafeURLError, match="10.1.2.3 is a private address"):
        outbound.url_checked("https://both.attacker.test/")


def test_a_public_address_is_accepted(monkeypatch):
    _resolver(monkeypatch, {"hooks.example.test": ["93.184.216.34"]})

    integration = integration_create(workspace=WorkspaceFactory(), name="CRM", url=" https://hooks.example.test/in ")

    assert integration.url == "https://hooks.example.test/in"


def test_the_admin_form_says_why_a_url_is_refused():
    workspace = WorkspaceFactory()
    form = IntegrationForm(data={"workspace": workspace.pk, "name": "Sneaky", "url": "http://169.254.169.254/",
                                 "secret": "s", "enabled": True, "created_at": "2026-01-01 00:00:00"})

    assert not form.is_valid()
    assert "169.254.169.254 is a link-local address" in form.errors["url"][0]
    assert IntegrationAdmin.form is IntegrationForm


def _push(integration):
    contact = ContactFactory(workspace=integration.workspace)
    return integration_push(integration=integration, contact=contact, event="contact.updated", idempotency_key="k1")


def test_a_dns_change_after_entry_does_not_reach_an_internal_address(monkeypatch, settings,
                                                                      django_capture_on_commit_callbacks):
    _resolver(monkeypatch, {"hooks.attacker.test": ["93.184.216.34", "127.0.0.1"]})
    integration = integration_create(workspace=WorkspaceFactory(), name="CRM", url="http://hooks.attacker.test/")
    connections = []
    monkeypatch.setattr(socket, "create_connection", lambda *a, **kw: connections.append(a) or (_ for _ in ()).throw(
        OSError("no network in tests")))

    with django_capture_on_commit_callbacks(execute=True):
        delivery = _push(integration)

    delivery.refresh_from_db()
    assert delivery.status != IntegrationDelivery.Status.DELIVERED
    assert "127.0.0.1 is a loopback address" in delivery.last_error
    assert connections == []


def test_the_connection_goes_to_the_address_that_was_checked(monkeypatch, settings, receivers,
                                                             django_capture_on_commit_callbacks):
    # The name resolves to an allowed address when checked, then to an internal one (DNS rebinding):
    # the request still goes to the checked address, named by its host, and the name is looked up once.
    settings.OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.1/32"]
    receiver = receivers()
    calls = _resolver(monkeypatch, {"hooks.example.test": ["127.0.0.1", "127.0.0.1", "10.9.9.9"]})
    integration = integration_create(workspace=WorkspaceFactory(), name="CRM",
                                     url=f"http://hooks.example.test:{receiver.port}/hook")

    with django_capture_on_commit_callbacks(execute=True):
        delivery = _push(integration)

    delivery.refresh_from_db()
    assert delivery.status == IntegrationDelivery.Status.DELIVERED, delivery.last_error
    assert len(receiver.requests) == 1
    assert receiver.requests[0]["Host"] == f"hooks.example.test:{receiver.port}"
    assert calls == ["hooks.example.test", "hooks.example.test"]  # once when entered, once when called


def test_a_redirect_is_not_followed(settings, receivers, django_capture_on_commit_callbacks):
    settings.OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.1/32"]
    inside = receivers()
    bouncer = receivers(status=307, location=f"http://127.0.0.1:{inside.port}/admin")
    integration = integration_create(workspace=WorkspaceFactory(), name="CRM",
                                     url=f"http://127.0.0.1:{bouncer.port}/hook")

    with django_capture_on_commit_callbacks(execute=True):
        delivery = _push(integration)

    delivery.refresh_from_db()
    assert delivery.status != IntegrationDelivery.Status.DELIVERED
    assert delivery.last_error == "HTTP 307 (redirects are not followed)"
    assert len(bouncer.requests) >= 1 and inside.requests == []
