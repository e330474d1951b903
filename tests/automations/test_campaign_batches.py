"""The frozen audience as batches of contact ids: each recipient row is written once, final; what is
left to do is what the batches not done still hold; campaigns frozen the old way (one pending row per
contact, by the release before automations 0007) are taken up and finished."""

import datetime

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from automations.models import Campaign, CampaignBatch, CampaignRecipient
from automations.selectors import campaign_remaining
from automations.services import campaign_cancel, campaign_create, campaign_send
from automations.services import campaign_fanout as campaign_services
from automations.services.campaign_fanout import _freeze_audience, _Outcome, _outcomes_write, campaigns_resume_stalled
from contacts.models import Contact, Message
from tests.factories import ContactFactory, MembershipFactory, WorkspaceFactory


def sending(campaign):
    Campaign.objects.filter(pk=campaign.pk).update(status="sending")
    return campaign


def rows(campaign):
    return list(CampaignRecipient.objects.filter(campaign=campaign).order_by("rank")
                .values_list("rank", "contact_id", "status"))


@pytest.mark.django_db
def test_launch_writes_batches_and_each_recipient_row_once_final(clock, free_workspace, monkeypatch):
    contacts = sorted(ContactFactory.create_batch(5, workspace=free_workspace),
                      key=lambda c: (-c.last_inbound_at.timestamp(), c.pk))
    campaign = sending(campaign_create(workspace=free_workspace, name="Hi", text="Hello"))
    monkeypatch.setattr(campaign_services, "_FREEZE_WRITE_EVERY", 2)  # written 2 batches, then the last one
    _freeze_audience(campaign, clock.now, batch_size=2)

    batches = list(CampaignBatch.objects.filter(campaign=campaign).values_list("number", "first_rank", "contact_ids"))
    assert batches == [(0, 0, [contacts[0].pk, contacts[1].pk]), (1, 2, [contacts[2].pk, contacts[3].pk]),
                       (2, 4, [contacts[4].pk])]
    assert not CampaignRecipient.objects.filter(campaign=campaign).exists()  # nothing per contact yet
    assert campaign_remaining(campaign=campaign) == 5

    seen = []
    real_write = campaign_services._outcomes_write

    def recording_write(campaign_id, outcomes, now, **kwargs):
        seen.extend(o.contact_id for o in outcomes)
        return real_write(campaign_id, outcomes, now, **kwargs)

    monkeypatch.setattr(campaign_services, "_outcomes_write", recording_write)
    campaign = campaign_send(campaign_id=campaign.pk, batch_size=2)

    assert sorted(seen) == sorted(c.pk for c in contacts)  # one write per recipient, no update after
    assert rows(campaign) == [(rank, c.pk, "sent") for rank, c in enumerate(contacts)]
    assert CampaignBatch.objects.filter(campaign=campaign, done_at__isnull=True).count() == 0
    assert campaign_remaining(campaign=campaign) == 0
    assert (campaign.status, campaign.recipients_count, campaign.sent_count) == ("done", 5, 5)


@pytest.mark.django_db
def test_a_contact_deleted_before_its_turn_is_left_out_and_the_count_follows(clock, free_workspace):
    contacts = sorted(ContactFactory.create_batch(5, workspace=free_workspace),
                      key=lambda c: (-c.last_inbound_at.timestamp(), c.pk))
    campaign = sending(campaign_create(workspace=free_workspace, name="Hi", text="Hello"))
    _freeze_audience(campaign, clock.now, batch_size=2)
    Contact.objects.filter(pk=contacts[3].pk).delete()  # erased after the launch, before its batch
    campaign.refresh_from_db()
    assert (campaign.recipients_count, campaign_remaining(campaign=campaign)) == (5, 4)

    campaign = campaign_send(campaign_id=campaign.pk, batch_size=2)

    assert [contact for _, contact, _ in rows(campaign)] == [c.pk for c in contacts if c != contacts[3]]
    assert (campaign.status, campaign.recipients_count, campaign.sent_count) == ("done", 4, 4)
    assert Message.objects.filter(workspace=free_workspace, direction="out").count() == 4


@pytest.mark.django_db
def test_cancelled_mid_campaign_keeps_the_audience_count_and_what_was_left(clock, free_workspace, monkeypatch):
    ContactFactory.create_batch(6, workspace=free_workspace)
    campaign = sending(campaign_create(workspace=free_workspace, name="Hi", text="Hello"))
    real_bulk = campaign_services.send_messages_bulk

    def cancelling_bulk(**kwargs):
        sent = real_bulk(**kwargs)
        campaign_cancel(campaign=campaign)  # the owner stops it while the first batch is out
        return sent

    monkeypatch.setattr(campaign_services, "send_messages_bulk", cancelling_bulk)
    campaign = campaign_send(campaign_id=campaign.pk, batch_size=2)

    assert (campaign.status, campaign.recipients_count, campaign.sent_count) == ("cancelled", 6, 2)
    assert campaign_remaining(campaign=campaign) == 4
    assert Message.objects.filter(workspace=free_workspace, direction="out").count() == 2


@pytest.mark.django_db
def test_a_campaign_frozen_just_now_is_not_taken_for_stalled(clock, free_workspace, monkeypatch):
    ContactFactory.create_batch(3, workspace=free_workspace)
    campaign = sending(campaign_create(workspace=free_workspace, name="Hi", text="Hello"))
    queued = []
    monkeypatch.setattr(campaign_services, "_queue_send", queued.append)
    launched = clock.now - datetime.timedelta(hours=1)
    Campaign.objects.filter(pk=campaign.pk).update(launched_at=launched)

    # Launched an hour ago, audience frozen a minute ago (a long freeze), no recipient row yet: busy.
    _freeze_audience(campaign, clock.now - datetime.timedelta(minutes=1), batch_size=2)
    assert campaigns_resume_stalled(now=clock.now) == []

    # Ten minutes later still no row: the worker died; the campaign is queued again.
    assert campaigns_resume_stalled(now=clock.now + datetime.timedelta(minutes=10)) == [campaign.pk]
    assert queued == [campaign.pk]


def _migrate(target=None):
    """Migrate to `target`, or forward to the latest migrations when None."""
    executor = MigrationExecutor(connection)
    executor.migrate([target] if target else executor.loader.graph.leaf_nodes())
    executor.loader.build_graph()


@pytest.mark.django_db(transaction=True)
def test_migration_0007_reversed_gives_the_previous_release_its_pending_rows_and_forward_again_they_are_sent():
    workspace = WorkspaceFactory()
    MembershipFactory(workspace=workspace)
    contacts = sorted(ContactFactory.create_batch(7, workspace=workspace),
                      key=lambda c: (-c.last_inbound_at.timestamp(), c.pk))
    campaign = sending(campaign_create(workspace=workspace, name="Midway", text="Hello"))
    _freeze_audience(campaign, timezone.now(), batch_size=2)
    batches = list(CampaignBatch.objects.filter(campaign=campaign).values_list("id", flat=True))
    # Midway: the first batch done; of the second, one row written by a per-message send, the rest not.
    _outcomes_write(campaign.pk, [_Outcome(contacts[0].pk, 0, "sent"), _Outcome(contacts[1].pk, 1, "sent")],
                    timezone.now(), batch_id=batches[0])
    _outcomes_write(campaign.pk, [_Outcome(contacts[2].pk, 2, "limited")], timezone.now())

    _migrate(("automations", "0006_drop_redundant_fk_indexes"))
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT rank, contact_id FROM automations_campaignrecipient WHERE status = 'pending'"
                           " ORDER BY rank")
            assert cursor.fetchall() == [(rank, contacts[rank].pk) for rank in (3, 4, 5, 6)]
    finally:
        _migrate()

    assert not CampaignBatch.objects.exists()  # the table came back empty; the pending rows stay
    assert campaign_remaining(campaign=campaign) == 4
    campaign = campaign_send(campaign_id=campaign.pk)

    assert [(rank, status) for rank, _, status in rows(campaign)] == [
        (0, "sent"), (1, "sent"), (2, "limited"), (3, "sent"), (4, "sent"), (5, "sent"), (6, "sent")]
    assert sorted(Message.objects.filter(workspace=workspace, direction="out").values_list("contact_id", flat=True)) \
        == sorted(contacts[rank].pk for rank in (3, 4, 5, 6))  # the pending ones, each once
    assert (campaign.status, campaign.recipients_count, campaign.sent_count, campaign.limited_count) == (
        "done", 7, 6, 1)


@pytest.mark.django_db
def test_a_campaign_frozen_the_old_way_after_the_migration_is_taken_over_and_finished(clock, free_workspace):
    """A worker of the previous release froze a campaign (pending rows) after migration 0007 ran, then
    died: the new release's fan-out turns the pending rows into batches and sends each contact once."""
    contacts = ContactFactory.create_batch(5, workspace=free_workspace)
    campaign = sending(campaign_create(workspace=free_workspace, name="Old", text="Hello"))
    Campaign.objects.filter(pk=campaign.pk).update(audience_frozen_at=clock.now, recipients_count=5)
    CampaignRecipient.objects.bulk_create(
        CampaignRecipient(campaign=campaign, contact=contact, rank=rank, status=status)
        for rank, (contact, status) in enumerate(zip(contacts, ["sent", "pending", "pending", "limited", "pending"],
                                                     strict=True))
    )

    campaign = campaign_send(campaign_id=campaign.pk, batch_size=50)

    assert [(rank, status) for rank, _, status in rows(campaign)] == [
        (0, "sent"), (1, "sent"), (2, "sent"), (3, "limited"), (4, "sent")]
    assert list(CampaignBatch.objects.filter(campaign=campaign).values_list("first_rank", "contact_ids")) == [
        (1, [contacts[1].pk, contacts[2].pk]), (4, [contacts[4].pk])]
    assert sorted(Message.objects.filter(workspace=free_workspace, direction="out").values_list(
        "contact_id", flat=True)) == sorted(contacts[rank].pk for rank in (1, 2, 4))
    assert (campaign.status, campaign.recipients_count, campaign.sent_count, campaign.limited_count) == (
        "done", 5, 4, 1)
