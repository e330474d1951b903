"""The campaign fan-out in set-based batches: engaged-first freeze on both databases, the outbox's bulk
path, and (PostgreSQL) the writer that commits one batch while the next is gated."""

import datetime

import pytest

from automations.models import Campaign, CampaignBatch, CampaignRecipient, PausedAction
from automations.selectors import campaign_remaining
from automations.services import campaign_create, campaign_send
from automations.services import campaign_fanout as campaign_services
from automations.services.segments import segment_create
from billing.activation import usage
from billing.models import ActivationRecord
from contacts.models import Message
from tests.factories import ContactFactory, MembershipFactory, WorkspaceFactory


def sending(campaign):
    Campaign.objects.filter(pk=campaign.pk).update(status="sending")
    return campaign


@pytest.mark.django_db
def test_freeze_ranks_a_segment_engaged_first_with_ties_by_id_and_never_engaged_last(clock, free_workspace):
    now = clock.now
    hour_ago = now - datetime.timedelta(hours=1)
    tied_a, tied_b = ContactFactory.create_batch(2, workspace=free_workspace, last_inbound_at=hour_ago)
    latest = ContactFactory(workspace=free_workspace, last_inbound_at=now - datetime.timedelta(minutes=5))
    never_a, never_b = ContactFactory.create_batch(2, workspace=free_workspace, last_inbound_at=None)
    ContactFactory(workspace=free_workspace, source="import")  # outside the segment
    ContactFactory(source="dm")  # another workspace's
    segment = segment_create(workspace=free_workspace, name="DMs", rules={"sources": ["dm"]})
    campaign = sending(campaign_create(workspace=free_workspace, name="Hi", text="Hello", audience="segment",
                                       segment=segment))

    campaign = campaign_send(campaign_id=campaign.pk, batch_size=2)

    ranked = list(CampaignRecipient.objects.filter(campaign=campaign).order_by("rank")
                  .values_list("rank", "contact_id", "status"))
    assert ranked == [
        (0, latest.pk, "sent"), (1, tied_a.pk, "sent"), (2, tied_b.pk, "sent"),
        (3, never_a.pk, "skipped_window"), (4, never_b.pk, "skipped_window"),
    ]
    assert (campaign.status, campaign.recipients_count, campaign.sent_count, campaign.skipped_window_count) == (
        "done", 5, 3, 2)
    assert ActivationRecord.objects.filter(workspace=free_workspace).count() == 3


@pytest.mark.django_db
def test_bulk_fanout_sends_each_recipient_once_with_exact_counters(clock, free_workspace):
    contacts = ContactFactory.create_batch(130, workspace=free_workspace)
    campaign = sending(campaign_create(workspace=free_workspace, name="Drop", text="New drop"))

    campaign = campaign_send(campaign_id=campaign.pk, batch_size=40)
    campaign_send(campaign_id=campaign.pk, batch_size=40)  # a redelivered task: nothing more

    messages = Message.objects.filter(workspace=free_workspace, direction="out")
    sent_to = list(messages.values_list("contact_id", flat=True))
    assert len(sent_to) == len(set(sent_to)) == 100
    engaged_first = sorted(contacts, key=lambda c: (-c.last_inbound_at.timestamp(), c.pk))
    assert set(sent_to) == {c.pk for c in engaged_first[:100]}
    recipients = CampaignRecipient.objects.filter(campaign=campaign)
    assert recipients.filter(status="sent", message__isnull=False).count() == 100
    assert recipients.filter(status="limited", message__isnull=True).count() == 30
    campaign.refresh_from_db()
    assert (campaign.recipients_count, campaign.sent_count, campaign.limited_count, campaign.skipped_window_count,
            campaign.failed_count) == (130, 100, 30, 0, 0)
    assert usage(free_workspace).activated == 100
    assert PausedAction.objects.filter(workspace=free_workspace).count() == 30


# --- PostgreSQL: the writer thread (real connections, so no test transaction around the fan-out) ------


def _limited_campaign(n_contacts):
    workspace = WorkspaceFactory()
    MembershipFactory(workspace=workspace)
    ContactFactory.create_batch(n_contacts, workspace=workspace)
    return workspace, sending(campaign_create(workspace=workspace, name="Race", text="Hi"))


def _assert_exact(workspace, campaign, *, sent, limited):
    sent_to = list(Message.objects.filter(workspace=workspace, direction="out").values_list("contact_id", flat=True))
    assert len(sent_to) == len(set(sent_to)) == sent
    statuses = list(CampaignRecipient.objects.filter(campaign=campaign).values_list("status", flat=True))
    assert (len(statuses), statuses.count("sent"), statuses.count("limited")) == (sent + limited, sent, limited)
    campaign.refresh_from_db()
    assert (campaign.status, campaign.sent_count, campaign.limited_count, campaign.fanout_token) == (
        "done", sent, limited, "")
    assert usage(workspace).activated == ActivationRecord.objects.filter(workspace=workspace).count() == sent
    assert PausedAction.objects.filter(workspace=workspace).count() == limited


@pytest.mark.django_db(transaction=True)
def test_overlapped_fanout_writes_every_batch_once_and_commits_them_in_order(monkeypatch):
    workspace, campaign = _limited_campaign(130)
    handed_over = []
    real_submit = campaign_services._BatchWriter.submit
    monkeypatch.setattr(campaign_services._BatchWriter, "submit",
                        lambda self, write: (handed_over.append(write), real_submit(self, write))[1])

    commits = []
    real_move = campaign_services._counters_move

    def recording_move(campaign_id, written, **kwargs):
        real_move(campaign_id, written, **kwargs)  # waits for the previous batch's commit, then takes the row
        commits.append(min(CampaignRecipient.objects.filter(pk__in=[w[0] for w in written]).values_list(
            "rank", flat=True)))

    monkeypatch.setattr(campaign_services, "_counters_move", recording_move)

    campaign_send(campaign_id=campaign.pk, batch_size=20)

    assert len(handed_over) == 7  # every batch went through the writer
    assert commits == [0, 20, 40, 60, 80, 100, 120]  # counters taken (and commits made) in rank order
    _assert_exact(workspace, campaign, sent=100, limited=30)
    ranks = list(CampaignRecipient.objects.filter(campaign=campaign).order_by("rank").values_list("status", flat=True))
    assert ranks == ["sent"] * 100 + ["limited"] * 30  # engaged first got the headroom


@pytest.mark.django_db(transaction=True)
def test_writer_failing_mid_campaign_stops_it_and_the_retry_sends_nobody_twice(monkeypatch):
    workspace, campaign = _limited_campaign(130)
    real_bulk = campaign_services.send_messages_bulk

    def failing_bulk(**kwargs):
        sent = real_bulk(**kwargs)
        first_contact = kwargs["items"][0][0]
        if CampaignBatch.objects.get(campaign=campaign, number=2).contact_ids[0] == first_contact:
            raise RuntimeError("connection lost")  # the third batch, after its INSERT: it rolls back
        return sent

    monkeypatch.setattr(campaign_services, "send_messages_bulk", failing_bulk)
    with pytest.raises(RuntimeError, match="connection lost"):
        campaign_send(campaign_id=campaign.pk, batch_size=20)

    # Batches commit in order: the two before the failure did, the one after it (written alongside by
    # the second thread) rolled back; what is left pending is the tail of the campaign.
    assert Message.objects.filter(workspace=workspace, direction="out").count() == 40
    assert campaign_remaining(campaign=campaign) == 90
    assert list(CampaignBatch.objects.filter(campaign=campaign, done_at__isnull=True).values_list(
        "first_rank", flat=True)) == [40, 60, 80, 100, 120]
    assert CampaignRecipient.objects.filter(campaign=campaign).count() == 40
    assert Campaign.objects.get(pk=campaign.pk).fanout_token == ""  # the lease was released

    monkeypatch.setattr(campaign_services, "send_messages_bulk", real_bulk)
    campaign_send(campaign_id=campaign.pk, batch_size=20)

    _assert_exact(workspace, campaign, sent=100, limited=30)
