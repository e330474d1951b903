"""Fixtures for the customer web app's tests."""

import pytest

from tests.factories import MembershipFactory, UserFactory

PASSWORD = "correct-horse-battery"


@pytest.fixture
def owner_client(client, owner):
    client.force_login(owner)
    return client


@pytest.fixture
def member_client(client, workspace):
    member = MembershipFactory(workspace=workspace, role="member", user=UserFactory(email="member@example.test")).user
    client.force_login(member)
    return client


@pytest.fixture
def outsider_client(client, db):
    outsider = MembershipFactory(user=UserFactory(email="outsider@example.test")).user  # owns another workspace
    client.force_login(outsider)
    return client
