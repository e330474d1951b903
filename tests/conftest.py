"""Shared fixtures."""

import logging
import re
import traceback

import pytest
from django.apps import apps as django_apps

from billing import hooks as billing_hooks
from billing.migrations import _plans
from contacts import hooks as contact_hooks
from contacts.fakemeta import FakeMeta
from contacts.fakemeta.server import FakeMetaServer
from contacts.pacing import pacing_reset
from tests.factories import ContactFactory, MembershipFactory, WorkspaceFactory


@pytest.fixture
def workspace(db):
    return WorkspaceFactory()


@pytest.fixture
def owner(workspace):
    return MembershipFactory(workspace=workspace).user


@pytest.fixture
def make_contacts():
    def make(workspace, n, **kwargs):
        return ContactFactory.create_batch(n, workspace=workspace, **kwargs)

    return make


@pytest.fixture(autouse=True)
def _default_plans_after_flush(request):
    """Transactional tests flush the database, data migrations included: put the plans back."""
    marker = request.node.get_closest_marker("django_db")
    if marker is None or not (marker.kwargs.get("transaction") or (marker.args and marker.args[0])):
        return
    request.getfixturevalue("transactional_db")

    _plans.create_plans(django_apps, None)


@pytest.fixture(autouse=True)
def _fresh_pacing():
    """Each test starts with every Instagram account's send windows empty and no back-off."""
    pacing_reset()


@pytest.fixture(autouse=True)
def _isolated_hooks():
    """Listeners a test registers on billing's hook points do not leak into the next test."""
    saved = (billing_hooks._headroom_listeners[:], billing_hooks._month_listeners[:])
    yield
    billing_hooks._headroom_listeners[:], billing_hooks._month_listeners[:] = saved


@pytest.fixture
def fake_meta(settings):
    """The Meta stand-in (contacts/fakemeta) on a local port; the settings point every Meta URL at it."""

    fake = FakeMeta(app_id=settings.META_APP_ID, app_secret=settings.META_APP_SECRET)
    server = FakeMetaServer(fake).start()
    for name, value in server.settings_for().items():
        setattr(settings, name, value)
    settings.META_GRAPH_MAX_ATTEMPTS = 2
    settings.META_GRAPH_RETRY_BASE_SECONDS = 0.01
    settings.META_GRAPH_TIMEOUT_SECONDS = 5
    fake.server = server
    yield fake
    server.stop()


@pytest.fixture(autouse=True)
def _isolated_contact_hooks():
    """Listeners a test registers on contacts' connection hook do not leak into the next test."""

    saved = contact_hooks._connected_listeners[:]
    yield
    contact_hooks._connected_listeners[:] = saved


# --- No Instagram token in any log line of the suite ------------------------------------------------
# Every token the suite handles has Meta's shape ("IGAA…": the stand-in's, and the tests' own), so one
# pattern finds any of them. The recorder sits first among the root logger's handlers: it reads each
# record as our code and libraries produced it, before the console handler's redaction, so a token
# logged anywhere fails the test that logged it, even if redaction would have hidden it.
_TOKEN_SHAPE = re.compile(r"IG(?:AA|QV)[A-Za-z0-9_\-.]{6,}")


class _LogLineRecorder(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=1)
        self.leaks: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = record.getMessage()
        except Exception:
            text = f"{record.msg} {record.args}"
        if record.exc_info:
            text += "\n" + "".join(traceback.format_exception(*record.exc_info))
        extras = {k: v for k, v in vars(record).items() if k not in _STANDARD_RECORD_ATTRS}
        if extras:
            text += f" {extras}"
        if _TOKEN_SHAPE.search(text):
            self.leaks.append(f"{record.name} {record.levelname}: {text[:500]}")


_STANDARD_RECORD_ATTRS = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "request_id"}


@pytest.fixture(autouse=True)
def _no_token_in_any_log_line():
    recorder = _LogLineRecorder()
    root = logging.getLogger()
    root.handlers.insert(0, recorder)
    yield recorder
    root.removeHandler(recorder)
    assert not recorder.leaks, "An Instagram token reached a log line:\n" + "\n".join(recorder.leaks)
