"""Tokens kept fresh by the beat job; a token Meta rejects breaks the connection: automated sends wait
before the gate (nothing charged) as "Instagram disconnected", owners get one email and a banner, and
reconnecting resumes them."""

import datetime

import pytest
from django.core import mail
from django.test import Client
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from automations.models import Campaign, PausedAction, ScenarioRun
from automations.services.campaigns import campaign_create, campaign_launch
from automations.services.resume import paused_actions_resume
from automations.services.scenarios import scenario_create
from billing.activation import usage
from contacts import instagram, instagram_connection
from contacts.fakemeta import account_id_for
from contacts.messaging import DISCONNECTED, send_message
from contacts.models import InstagramConnection, InstagramConnectState, Message
from contacts.tokens import token_decrypt
from tests.factories import ContactFactory, MembershipFactory, WorkspaceFactory, connect_instagram
from tests.instagram.helpers import connect, deliver_webhook, dm_payload, owner_client

pytestmark = pytest.mark.django_db


def _connected(fake_meta, username, **kwargs):
    workspace = WorkspaceFactory()
    owner = MembershipFactory(workspace=workspace).user
    connection = connect_instagram(workspace, account_id=account_id_for(username), username=username,
                                   token=fake_meta.issue_token(username=username), **kwargs)
    return workspace, owner, connection


# --- refresh ----------------------------------------------------------------------------------------


def test_the_refresh_job_is_scheduled():
    task = PeriodicTask.objects.get(task="contacts.tasks.refresh_instagram_tokens")
    assert task.enabled and task.interval.every == 60


def test_a_token_a_day_old_expiring_within_7_days_is_refreshed(fake_meta):
    workspace, _, connection = _connected(fake_meta, "fresh.brand", refreshed_days_ago=2, expires_in_days=5)
    old_token = token_decrypt(connection.token_encrypted)
    now = timezone.now()

    assert instagram.tokens_refresh_due(now=now) == {"refreshed": 1, "broken": 0, "retry": 0}

    connection.refresh_from_db()
    new_token = token_decrypt(connection.token_encrypted)
    assert new_token != old_token and fake_meta.token_account(new_token, kind="long")
    assert connection.token_refreshed_at == now
    assert connection.token_expires_at == now + datetime.timedelta(days=60)
    assert ("GET", "/graph/refresh_access_token") in fake_meta.calls


def test_tokens_not_due_are_left_alone(fake_meta):
    _connected(fake_meta, "young.token", refreshed_days_ago=0, expires_in_days=3)  # refreshed an hour ago
    _connected(fake_meta, "far.expiry", refreshed_days_ago=10, expires_in_days=30)

    assert instagram.tokens_refresh_due() == {"refreshed": 0, "broken": 0, "retry": 0}
    assert ("GET", "/graph/refresh_access_token") not in fake_meta.calls


def test_a_refresh_meta_rejects_breaks_the_connection_and_emails_the_owners_once(
        fake_meta, django_capture_on_commit_callbacks):
    workspace, owner, connection = _connected(fake_meta, "revoked.brand", refreshed_days_ago=2, expires_in_days=5)
    fake_meta.revoke("revoked.brand")

    with django_capture_on_commit_callbacks(execute=True):
        assert instagram.tokens_refresh_due()["broken"] == 1
        assert instagram.tokens_refresh_due()["broken"] == 0  # already broken: not tried, not mailed again

    connection.refresh_from_db()
    assert (connection.status, connection.broken_reason) == ("broken", "Instagram rejected the access token "
                                                                       "(error 190).")
    assert [m.to for m in mail.outbox] == [[owner.email]]
    assert mail.outbox[0].subject == f"Instagram disconnected: reconnect {workspace.name}"


def test_a_failed_refresh_is_retried_before_expiry_and_breaks_past_it(
        fake_meta, settings, django_capture_on_commit_callbacks):
    _, _, early = _connected(fake_meta, "early.brand", refreshed_days_ago=2, expires_in_days=5)
    settings.META_GRAPH_API_BASE = "http://127.0.0.1:9/v21.0"  # Meta unreachable

    assert instagram.tokens_refresh_due() == {"refreshed": 0, "broken": 0, "retry": 1}
    early.refresh_from_db()
    assert early.status == "active" and mail.outbox == []

    expired = timezone.now() - datetime.timedelta(hours=1)
    InstagramConnection.objects.filter(pk=early.pk).update(token_expires_at=expired)
    with django_capture_on_commit_callbacks(execute=True):
        assert instagram.tokens_refresh_due() == {"refreshed": 0, "broken": 1, "retry": 0}
    early.refresh_from_db()
    assert early.broken_reason == "The access token expired and could not be refreshed."
    assert len(mail.outbox) == 1


# --- a revoked token: paused before the gate, one email, a banner, resumed on reconnect ------------------


def test_revoked_token_pauses_sends_before_the_gate_and_a_reconnect_resumes_them(
        fake_meta, settings, django_capture_on_commit_callbacks):
    settings.INSTAGRAM_SEND_BACKEND = "graph"
    workspace = WorkspaceFactory()
    client, owner = owner_client(workspace)
    assert connect(client, workspace.pk, username="paused.brand").status_code == 200
    contacts = ContactFactory.create_batch(3, workspace=workspace)
    fake_meta.revoke("paused.brand")  # the account removed the app on Instagram

    with django_capture_on_commit_callbacks(execute=True):
        first = campaign_create(workspace=workspace, name="Drop", text="It is live")
        campaign_launch(campaign=first, launched_by=owner)
        second = campaign_create(workspace=workspace, name="Second", text="Again")
        campaign_launch(campaign=second, launched_by=owner)

    waiting = PausedAction.objects.filter(workspace=workspace, status="waiting")
    assert waiting.count() == 6
    assert set(waiting.values_list("reason", flat=True)) == {"Instagram disconnected"}
    assert usage(workspace).activated == 0  # stopped before the gate: nothing charged
    assert fake_meta.sent == []
    assert len(mail.outbox) == 1 and mail.outbox[0].to == [owner.email]
    page = client.get(f"/w/{workspace.pk}/")
    assert 'data-testid="instagram-banner"' in page.content.decode()
    assert "Reconnect Instagram" in page.content.decode()
    assert client.get(f"/api/v1/workspaces/{workspace.pk}/instagram/").json()["status"] == "broken"

    # The headroom catch-up leaves them alone while the connection is broken.
    assert paused_actions_resume(workspace=workspace).resumed == 0

    with django_capture_on_commit_callbacks(execute=True):
        assert connect(client, workspace.pk, username="paused.brand").status_code == 200

    assert PausedAction.objects.filter(workspace=workspace, status="waiting").count() == 0
    assert sorted(m["text"] for m in fake_meta.sent) == ["Again"] * 3 + ["It is live"] * 3
    assert {m["recipient"]["id"] for m in fake_meta.sent} == {c.igsid for c in contacts}
    assert usage(workspace).activated == 3
    for campaign in (first, second):
        campaign.refresh_from_db()
        assert (campaign.status, campaign.sent_count) == (Campaign.Status.DONE, 3)
    assert 'data-testid="instagram-banner"' not in client.get(f"/w/{workspace.pk}/").content.decode()
    assert len(mail.outbox) == 1


def test_a_send_meta_rejects_waits_queued_and_marks_the_connection_broken(
        fake_meta, settings, django_capture_on_commit_callbacks):
    settings.INSTAGRAM_SEND_BACKEND = "graph"
    workspace, owner, _ = _connected(fake_meta, "mid.flight")
    contact = ContactFactory(workspace=workspace)
    fake_meta.revoke("mid.flight")

    with django_capture_on_commit_callbacks(execute=True):
        result = send_message(workspace=workspace, contact=contact, text="Hi", origin="automated",
                              idempotency_key="k-1")

    assert result.status == DISCONNECTED
    assert (result.message.status, result.message.error) == ("queued", "Instagram disconnected")
    assert instagram_connection.sending_blocked(workspace_id=workspace.pk)
    assert len(mail.outbox) == 1
    # A manual message from the inbox fails with a clear reason instead.
    manual = send_message(workspace=workspace, contact=contact, text="Hello", origin="manual")
    assert manual.status == "failed" and "reconnect" in manual.message.error


def test_a_scenario_run_waits_before_the_gate_while_disconnected(fake_meta, settings,
                                                                  django_capture_on_commit_callbacks):
    workspace, owner, connection = _connected(fake_meta, "scenario.brand")
    InstagramConnection.objects.filter(pk=connection.pk).update(status="broken")
    scenario_create(workspace=workspace, name="Welcome", trigger_type="new_contact",
                    steps=[{"type": "send_message", "text": "Welcome!"}])

    with django_capture_on_commit_callbacks(execute=True):
        deliver_webhook(Client(), dm_payload(connection.account_id, "7770001", "mid.s.1"))

    run = ScenarioRun.objects.get()
    assert run.status == ScenarioRun.Status.LIMITED
    assert PausedAction.objects.get().reason == "Instagram disconnected"
    assert usage(workspace).activated == 0
    assert Message.objects.filter(direction="out").count() == 0


def test_the_hourly_job_drops_connect_states_older_than_a_day(fake_meta):
    workspace = WorkspaceFactory()
    user = MembershipFactory(workspace=workspace).user
    instagram.connect_url(workspace=workspace, user=user, now=timezone.now() - datetime.timedelta(days=2))
    instagram.connect_url(workspace=workspace, user=user)

    instagram.tokens_refresh_due()

    assert InstagramConnectState.objects.count() == 1
