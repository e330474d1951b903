"""Shared fixtures."""

import pytest
from django.db import connection

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


def pytest_collection_modifyitems(config, items):
    """Tests marked `postgres` (real parallel connections, query plans, PostgreSQL's own constraints):
    PostgreSQL only, said plainly on SQLite."""
    from django.conf import settings

    if settings.DATABASES["default"]["ENGINE"].endswith("postgresql"):
        return
    skip = pytest.mark.skip(reason="needs PostgreSQL (CI runs it)")
    for item in items:
        if "postgres" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def is_postgres():
    return connection.vendor == "postgresql"


@pytest.fixture(autouse=True)
def _default_plans_after_flush(request):
    """Transactional tests flush the database, data migrations included: put the plans back."""
    marker = request.node.get_closest_marker("django_db")
    if marker is None or not (marker.kwargs.get("transaction") or (marker.args and marker.args[0])):
        return
    request.getfixturevalue("transactional_db")
    from django.apps import apps as django_apps

    from billing.migrations import _plans  # noqa: PLC0415

    _plans.create_plans(django_apps, None)


@pytest.fixture(autouse=True)
def _isolated_hooks():
    """Listeners a test registers on billing's hook points do not leak into the next test."""
    from billing import hooks

    saved = (hooks._headroom_listeners[:], hooks._month_listeners[:])
    yield
    hooks._headroom_listeners[:], hooks._month_listeners[:] = saved


@pytest.fixture
def fake_meta(settings):
    """The Meta stand-in (contacts/fakemeta) on a local port; the settings point every Meta URL at it."""
    from contacts.fakemeta import FakeMeta
    from contacts.fakemeta.server import FakeMetaServer

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
    from contacts import hooks

    saved = hooks._connected_listeners[:]
    yield
    hooks._connected_listeners[:] = saved
