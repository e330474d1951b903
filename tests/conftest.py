"""Shared fixtures."""

import pytest
from django.apps import apps as django_apps

from billing import hooks
from billing.migrations import _plans
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
def _isolated_hooks():
    """Listeners a test registers on billing's hook points do not leak into the next test."""
    saved = (hooks._headroom_listeners[:], hooks._month_listeners[:])
    yield
    hooks._headroom_listeners[:], hooks._month_listeners[:] = saved
