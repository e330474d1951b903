"""Campaigns through the gate: exact activations, pause, resume, preview, engaged first, reserve."""

import datetime

import pytest
from django.core import mail

from automations.models import Campaign, PausedAction, UsageAlert
from automations.selectors import campaign_remaining
from automations.services import (
    campaign_cancel,
    campaign_create,
    campaign_launch,
    campaign_preview,
    campaign_send,
    campaigns_launch_due,
    paused_actions_cancel,
)
from automations.services import campaign_fanout as campaign_services
from automations.services.campaign_fanout import CampaignBusy
from billing.activation import activate_many, usage
from billing.models import ActivationRecord
from billing.rollover import month_roll_over_as_needed
from billing.services import bonus_grant
from contacts.messaging import OutboxBackend, send_message
from contacts.models import Contact, Message
from contacts.services import folder_add_contacts
from tests.factories import ContactFactory, FolderFactory, MembershipFactory, WorkspaceFactory

pytestmark = pytest.mark.django_db

UTC = datetime.UTC
NOV = datetime.date(2026, 11, 1)
DEC = datetime.date(2026, 12, 1)
T0 = datetime.datetime(2026, 11, 30, 20, 0, tzinfo=UTC)


def launch(campaign, callbacks, user=None):
    with callbacks(execute=True):
        campaign_launch(campaign=campaign, launched_by=user)
    campaign.refresh_from_db()
    return campaign


def statuses(campaign):
    return dict(campaign.recipients.values_list("contact_id", "status"))


def test_500_on_free_activates_100_pauses_400_then_bonus_and_next_month(
    clock, free_workspace, django_capture_on_commit_callbacks
):
    clock.set(T0)
    workspace = free_workspace
    # 450 contacts wrote in during the last hours (contact i the (i+1)-th most recent); 50 wrote 23 hours
    # ago: inside the window now, outside it by tomorrow's midnight.
    engaged = [ContactFactory(workspace=workspace, last_inbound_at=T0 - datetime.timedelta(minutes=i + 1))
               for i in range(450)]
    fading = [ContactFactory(workspace=workspace, last_inbound_at=T0 - datetime.timedelta(hours=23))
              for _ in range(50)]
    ranked = engaged + fading
    campaign = campaign_create(workspace=workspace, name="Black Friday", text="20% off today")

    campaign = launch(campaign, django_capture_on_commit_callbacks)

    assert usage(workspace).activated == 100
    records = ActivationRecord.objects.filter(workspace=workspace, month=NOV)
    assert set(records.values_list("contact_id", flat=True)) == {c.pk for c in ranked[:100]}
    assert set(records.values_list("kind", "automation_ref")) == {("campaign", f"campaign:{campaign.pk}")}
    paused = PausedAction.objects.filter(workspace=workspace).order_by("created_at", "id")
    assert [p.contact_id for p in paused] == [c.pk for c in ranked[100:]]
    assert {p.status for p in paused} == {"waiting"} and {p.action_type for p in paused} == {"campaign_message"}
    assert Message.objects.filter(workspace=workspace, direction="out").count() == 100
    assert (campaign.status, campaign.recipients_count, campaign.sent_count, campaign.limited_count) == (
        "done", 500, 100, 400)
    assert (campaign.skipped_window_count, campaign.failed_count) == (0, 0)

    # A bonus of 50 resumes exactly the 50 oldest paused messages, at once.
    clock.set(T0 + datetime.timedelta(minutes=30))
    with django_capture_on_commit_callbacks(execute=True):
        bonus_grant(workspace=workspace, amount=50, reason="Black Friday goodwill", granted_by=None)

    assert usage(workspace).activated == 150
    resumed = PausedAction.objects.filter(workspace=workspace, status="resumed")
    assert set(resumed.values_list("contact_id", flat=True)) == {c.pk for c in ranked[100:150]}
    assert PausedAction.objects.filter(workspace=workspace, status="waiting").count() == 350
    assert Message.objects.filter(workspace=workspace, direction="out", status="sent").count() == 150
    campaign.refresh_from_db()
    assert (campaign.sent_count, campaign.limited_count) == (150, 350)

    # The next month: 100 fresh activations go to the oldest paused messages still in their window;
    # the 50 whose window closed expire with that reason and are not sent.
    clock.set(datetime.datetime(2026, 12, 1, 0, 5, tzinfo=UTC))
    with django_capture_on_commit_callbacks(execute=True):
        month_roll_over_as_needed(now=clock.now)

    december = ActivationRecord.objects.filter(workspace=workspace, month=DEC)
    assert set(december.values_list("contact_id", flat=True)) == {c.pk for c in ranked[150:250]}
    assert usage(workspace).activated == 100
    expired = PausedAction.objects.filter(workspace=workspace, status="expired")
    assert set(expired.values_list("contact_id", flat=True)) == {c.pk for c in fading}
    assert set(expired.values_list("reason", flat=True)) == {"messaging_window_closed"}
    waiting = PausedAction.objects.filter(workspace=workspace, status="waiting").order_by("created_at", "id")
    assert [p.contact_id for p in waiting] == [c.pk for c in ranked[250:450]]
    assert Message.objects.filter(workspace=workspace, direction="out", status="sent").count() == 250
    assert not Message.objects.filter(contact__in=fading).exists()
    campaign.refresh_from_db()
    assert (campaign.sent_count, campaign.limited_count, campaign.skipped_window_count) == (250, 200, 50)
    assert len(statuses(campaign)) == 500 and campaign_remaining(campaign=campaign) == 0

    # Alerts: 80% and 100% once each per month, emailed to the owner.
    assert sorted(UsageAlert.objects.values_list("month", "threshold")) == [
        (NOV, 80), (NOV, 100), (DEC, 80), (DEC, 100)]
    assert len(mail.outbox) == 4


def test_already_activated_contact_is_never_paused(clock, free_workspace, django_capture_on_commit_callbacks):
    workspace = free_workspace
    contacts = ContactFactory.create_batch(101, workspace=workspace)
    active_one = contacts[-1]
    filler = ContactFactory.create_batch(99, workspace=workspace, last_inbound_at=None)
    activate_many(workspace, [active_one, *filler], kind="scenario")  # quota used up: 100/100
    campaign = campaign_create(workspace=workspace, name="Promo", text="Hello")

    campaign = launch(campaign, django_capture_on_commit_callbacks)

    assert statuses(campaign)[active_one.pk] == "sent"
    assert not PausedAction.objects.filter(contact=active_one).exists()
    assert PausedAction.objects.filter(workspace=workspace, status="waiting").count() == 100
    assert usage(workspace).activated == 100


def test_engaged_first_activates_most_recent_inbound(clock, free_workspace, django_capture_on_commit_callbacks):
    workspace = free_workspace
    now = clock.now
    never = ContactFactory.create_batch(3, workspace=workspace, last_inbound_at=None)
    old = ContactFactory.create_batch(60, workspace=workspace, last_inbound_at=now - datetime.timedelta(hours=20))
    recent = ContactFactory.create_batch(60, workspace=workspace, last_inbound_at=now - datetime.timedelta(hours=1))
    campaign = campaign_create(workspace=workspace, name="Launch", text="New drop")

    campaign = launch(campaign, django_capture_on_commit_callbacks)

    activated = set(ActivationRecord.objects.filter(workspace=workspace).values_list("contact_id", flat=True))
    # All 60 recent ones, then the 40 lowest ids among those at 20 hours (ties broken by id).
    assert activated == {c.pk for c in recent} | {c.pk for c in sorted(old, key=lambda c: c.pk)[:40]}
    final = statuses(campaign)
    assert {final[c.pk] for c in never} == {"skipped_window"}
    assert (campaign.sent_count, campaign.limited_count, campaign.skipped_window_count) == (100, 20, 3)


def test_preview_equals_launch(clock, free_workspace, django_capture_on_commit_callbacks):
    workspace = free_workspace
    workspace.activation_reserve = 10
    workspace.save(update_fields=["activation_reserve"])
    contacts = ContactFactory.create_batch(150, workspace=workspace)
    ContactFactory.create_batch(7, workspace=workspace, last_inbound_at=clock.now - datetime.timedelta(days=3))
    activate_many(workspace, contacts[:30], kind="scenario")
    campaign = campaign_create(workspace=workspace, name="Preview me", text="Hi")

    preview = campaign_preview(campaign=campaign)
    campaign = launch(campaign, django_capture_on_commit_callbacks)

    assert (preview.audience, preview.already_active, preview.would_activate, preview.would_be_limited,
            preview.outside_window) == (157, 30, 60, 60, 7)
    newly = ActivationRecord.objects.filter(workspace=workspace, kind="campaign").count()
    assert (campaign.recipients_count, newly, campaign.limited_count, campaign.skipped_window_count) == (
        preview.audience, preview.would_activate, preview.would_be_limited, preview.outside_window)
    assert campaign.sent_count == preview.already_active + preview.would_activate


def test_reserve_is_out_of_reach_of_campaigns_but_not_scenarios(clock, free_workspace,
                                                                django_capture_on_commit_callbacks):
    workspace = free_workspace
    workspace.activation_reserve = 25
    workspace.save(update_fields=["activation_reserve"])
    ContactFactory.create_batch(120, workspace=workspace)
    campaign = campaign_create(workspace=workspace, name="Big broadcast", text="Hi all")

    campaign = launch(campaign, django_capture_on_commit_callbacks)

    assert (campaign.sent_count, campaign.limited_count) == (75, 45)
    assert usage(workspace).activated == 75
    # A scenario may still use the reserve.
    newcomers = ContactFactory.create_batch(30, workspace=workspace)
    result = activate_many(workspace, newcomers, kind="scenario")
    assert (len(result.newly_activated), len(result.refused)) == (25, 5)


class OneByOneOutbox(OutboxBackend):
    """The outbox as a networked backend (Graph) is driven: one message at a time, no bulk path."""
    bulk = False


def _assert_finished_once(campaign, workspace, contacts):
    campaign.refresh_from_db()
    per_contact = Message.objects.filter(workspace=workspace, direction="out").values_list("contact_id", flat=True)
    assert len(per_contact) == len(set(per_contact)) == 100
    final = statuses(campaign)
    assert len(final) == 130 and set(final) == {c.pk for c in contacts}
    assert sorted(final.values()).count("sent") == 100 and sorted(final.values()).count("limited") == 30
    assert (campaign.status, campaign.sent_count, campaign.limited_count) == ("done", 100, 30)
    assert usage(workspace).activated == 100
    assert ActivationRecord.objects.filter(workspace=workspace).count() == 100
    assert PausedAction.objects.filter(workspace=workspace).count() == 30


@pytest.mark.parametrize("concurrency", [1, 8])
def test_task_killed_mid_batch_and_retried_sends_nobody_twice(
    clock, free_workspace, monkeypatch, settings, django_capture_on_commit_callbacks, concurrency
):
    settings.INSTAGRAM_SEND_BACKEND = "tests.automations.test_campaigns.OneByOneOutbox"
    settings.META_SEND_CONCURRENCY = concurrency
    settings.CAMPAIGN_NETWORK_BATCH_SIZE = 50
    workspace = free_workspace
    contacts = ContactFactory.create_batch(130, workspace=workspace)
    campaign = campaign_create(workspace=workspace, name="Crashy", text="Hello")
    real_deliver = campaign_services.MessageSender.deliver
    delivered: list[int] = []  # the message ids that reached "Meta"
    calls = {"n": 0}

    def dying_deliver(self, **kwargs):
        # The 37th send reaches Meta, then the worker dies before its answer is recorded.
        result = real_deliver(self, **kwargs)
        delivered.append(kwargs["message_id"])
        calls["n"] += 1
        if calls["n"] == 37:
            raise SystemExit("worker killed")
        return result

    monkeypatch.setattr(campaign_services.MessageSender, "deliver", dying_deliver)
    monkeypatch.setattr(campaign_services, "CAMPAIGN_BATCH_SIZE", 50)
    with pytest.raises(SystemExit), django_capture_on_commit_callbacks(execute=True):
        campaign_launch(campaign=campaign, launched_by=None)
    unknown = Message.objects.get(pk=delivered[36])
    assert unknown.status == "queued"  # its answer was never recorded

    monkeypatch.setattr(campaign_services.MessageSender, "deliver", real_deliver)
    campaign_send(campaign_id=campaign.pk, batch_size=50)  # the retried task
    campaign_send(campaign_id=campaign.pk, batch_size=50)  # and once more: nothing changes

    # Each contact has at most one message; the one in flight at the crash is not sent again (Meta has
    # no idempotency key): it ends failed, uncharged, and every other contact got theirs once.
    campaign.refresh_from_db()
    per_contact = list(Message.objects.filter(workspace=workspace, direction="out")
                       .values_list("contact_id", flat=True))
    assert len(per_contact) == len(set(per_contact))
    unknown.refresh_from_db()
    assert unknown.status == "failed" and "Outcome unknown" in unknown.error
    assert delivered.count(unknown.pk) == 1
    final = statuses(campaign)
    assert len(final) == 130 and set(final) == {c.pk for c in contacts}
    assert final[unknown.contact_id] == "failed"
    sent = sorted(final.values()).count("sent")
    failed = sorted(final.values()).count("failed")
    limited = sorted(final.values()).count("limited")
    # The crash may leave a few more messages stored but not yet handed over (up to two pool-widths):
    # they end failed too, never sent twice. Failed ones are not charged: the quota's 100 went to others.
    assert 1 <= failed <= 2 * concurrency + 1
    assert (sent, limited) == (100, 30 - failed)
    assert (campaign.status, campaign.sent_count, campaign.failed_count, campaign.limited_count) == (
        "done", sent, failed, limited)
    assert usage(workspace).activated == 100
    assert ActivationRecord.objects.filter(workspace=workspace).count() == 100
    assert PausedAction.objects.filter(workspace=workspace).count() == limited


@pytest.mark.parametrize("die_at", ["after_gate", "after_messages", "after_statuses"])
def test_bulk_fanout_killed_mid_batch_and_retried_sends_nobody_twice(
    clock, free_workspace, monkeypatch, die_at, django_capture_on_commit_callbacks
):
    """The outbox's bulk path: the worker dies in the second batch, at each point of its work."""
    workspace = free_workspace
    contacts = ContactFactory.create_batch(130, workspace=workspace)
    campaign = campaign_create(workspace=workspace, name="Crashy", text="Hello")
    real_bulk, real_write = campaign_services.send_messages_bulk, campaign_services._outcomes_write
    batches = {"n": 0}

    def dying_bulk(**kwargs):
        batches["n"] += 1
        if batches["n"] == 2 and die_at == "after_gate":
            raise SystemExit("worker killed")
        sent = real_bulk(**kwargs)
        if batches["n"] == 2 and die_at == "after_messages":
            raise SystemExit("worker killed")
        return sent

    def dying_write(campaign_id, outcomes, now, **kwargs):
        written = real_write(campaign_id, outcomes, now, **kwargs)
        if batches["n"] == 2 and die_at == "after_statuses":
            raise SystemExit("worker killed")
        return written

    monkeypatch.setattr(campaign_services, "send_messages_bulk", dying_bulk)
    monkeypatch.setattr(campaign_services, "_outcomes_write", dying_write)
    monkeypatch.setattr(campaign_services, "CAMPAIGN_BATCH_SIZE", 50)
    with pytest.raises(SystemExit), django_capture_on_commit_callbacks(execute=True):
        campaign_launch(campaign=campaign, launched_by=None)
    # The second batch's transaction never committed: its messages and statuses are not there.
    assert Message.objects.filter(workspace=workspace, direction="out").count() == 50
    assert campaign_remaining(campaign=campaign) == 80
    # The gate had committed the second batch's reservations: in flight, not charged, until the retry
    # finds them again and confirms them with its sends (rule 13).
    snapshot = usage(workspace)
    assert (snapshot.activated, snapshot.in_flight) == (50, 50)

    monkeypatch.setattr(campaign_services, "send_messages_bulk", real_bulk)
    monkeypatch.setattr(campaign_services, "_outcomes_write", real_write)
    campaign_send(campaign_id=campaign.pk, batch_size=50)  # the retried task
    campaign_send(campaign_id=campaign.pk, batch_size=50)  # and once more: nothing changes

    _assert_finished_once(campaign, workspace, contacts)


def test_folder_audience_and_scheduled_launch_by_beat(clock, free_workspace, django_capture_on_commit_callbacks):
    workspace = free_workspace
    folder = FolderFactory(workspace=workspace)
    inside = ContactFactory.create_batch(4, workspace=workspace)
    ContactFactory.create_batch(5, workspace=workspace)
    for contact in inside:
        folder.memberships.create(contact=contact)
    later = clock.now + datetime.timedelta(hours=1)
    campaign = campaign_create(workspace=workspace, name="VIP", text="Early access", audience="folder",
                               folder=folder, scheduled_at=later)

    campaign = launch(campaign, django_capture_on_commit_callbacks)
    assert campaign.status == "scheduled" and not campaign.recipients.exists()
    assert campaigns_launch_due() == []

    clock.set(later + datetime.timedelta(seconds=30))
    with django_capture_on_commit_callbacks(execute=True):
        started = campaigns_launch_due()
    with django_capture_on_commit_callbacks(execute=True):
        again = campaigns_launch_due()

    campaign.refresh_from_db()
    assert (started, again) == ([campaign.pk], [])
    assert (campaign.status, campaign.sent_count) == ("done", 4)
    assert set(campaign.recipients.values_list("contact_id", flat=True)) == {c.pk for c in inside}


def test_cancel_stops_paused_messages(clock, free_workspace, django_capture_on_commit_callbacks):
    workspace = free_workspace
    ContactFactory.create_batch(110, workspace=workspace)
    campaign = launch(campaign_create(workspace=workspace, name="Oops", text="Wrong text"),
                      django_capture_on_commit_callbacks)
    with pytest.raises(Exception, match="already finished"):
        campaign_cancel(campaign=campaign)
    draft = campaign_create(workspace=workspace, name="Draft", text="x")
    campaign_cancel(campaign=draft)
    assert draft.status == "cancelled"

    assert paused_actions_cancel(workspace=workspace, automation_ref=campaign.ref) == 10
    with django_capture_on_commit_callbacks(execute=True):
        bonus_grant(workspace=workspace, amount=20, reason="test", granted_by=None)
    assert Message.objects.filter(workspace=workspace, direction="out").count() == 100


def test_launch_twice_is_refused_and_validation(free_workspace, django_capture_on_commit_callbacks):
    workspace = free_workspace
    ContactFactory.create_batch(2, workspace=workspace)
    campaign = launch(campaign_create(workspace=workspace, name="Once", text="Hi"), django_capture_on_commit_callbacks)
    with pytest.raises(Exception, match="cannot be launched"):
        campaign_launch(campaign=campaign, launched_by=None)
    assert Message.objects.filter(workspace=workspace).count() == 2
    other = WorkspaceFactory()
    with pytest.raises(Exception, match="segment"):
        campaign_create(workspace=workspace, name="x", text="y", audience="segment", segment=None)
    with pytest.raises(Exception, match="1 to 1000"):
        campaign_create(workspace=workspace, name="x", text="   ")
    with pytest.raises(Exception, match="folder"):
        campaign_create(workspace=workspace, name="x", text="y", audience="folder",
                        folder=FolderFactory(workspace=other))
    assert Campaign.objects.filter(workspace=workspace).count() == 1


def test_manual_folder_add_and_dm_at_the_limit_create_no_activation(free_workspace):
    workspace = free_workspace
    member = MembershipFactory(workspace=workspace, role="member").user
    activate_many(workspace, ContactFactory.create_batch(100, workspace=workspace), kind="campaign")
    assert usage(workspace).limit_reached
    stranger = ContactFactory(workspace=workspace)
    folder = FolderFactory(workspace=workspace)

    added = folder_add_contacts(folder=folder, contact_ids=[stranger.pk], added_by=member)
    sent = send_message(workspace=workspace, contact=stranger, text="Hi, Dana here", origin="manual", sent_by=member)

    assert added == 1 and sent.status == "sent"
    assert not ActivationRecord.objects.filter(contact=stranger).exists()
    assert usage(workspace).activated == 100
    assert not PausedAction.objects.filter(contact=stranger).exists()
    assert Contact.objects.get(pk=stranger.pk).folders.filter(pk=folder.pk).exists()


def test_a_live_fanout_lease_keeps_a_second_worker_out_until_it_runs_out(clock, free_workspace):
    ContactFactory.create_batch(3, workspace=free_workspace)
    campaign = campaign_create(workspace=free_workspace, name="Leased", text="Hi")
    Campaign.objects.filter(pk=campaign.pk).update(
        status="sending", fanout_token="another-worker", fanout_lease_until=clock.now + datetime.timedelta(minutes=5))

    with pytest.raises(CampaignBusy):
        campaign_send(campaign_id=campaign.pk)
    assert not Message.objects.exists() and not campaign.recipients.exists()

    clock.set(clock.now + datetime.timedelta(minutes=6))  # that worker died: its lease ran out
    campaign_send(campaign_id=campaign.pk)

    campaign.refresh_from_db()
    assert (campaign.status, campaign.sent_count, campaign.fanout_token, campaign.fanout_lease_until) == (
        "done", 3, "", None)
