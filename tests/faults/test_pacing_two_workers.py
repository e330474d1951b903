"""Pacing holds across processes: two Celery workers (two processes) send two campaigns of the same
Instagram account at once, and the Send API stand-in never sees more than META_SEND_RATE calls of that
account in any calendar second. The rate is compressed (20 a second) so the test stays short; the
pacing windows are in Redis, shared by both workers (META_PACING_URL)."""

import datetime
import os

import pytest
import redis
from django.utils import timezone

from accounts.models import Workspace
from automations.models import Campaign
from automations.services import campaign_create, campaign_launch
from billing.services import bonus_grant
from contacts.fakemeta.send_api import SendApiStandIn
from contacts.models import Contact
from tests.factories import MembershipFactory, connect_instagram
from tests.faults.conftest import BROKER_URL, assert_no_drift, broker, wait_until

pytestmark = [pytest.mark.django_db(transaction=True)]

RATE = 20
PER_CAMPAIGN = 120
ACCOUNT = "17841400000002020"
PACING_REDIS_DB = int(os.environ.get("FAULTS_PACING_REDIS_DB", "6"))
PACING_URL = f"redis://127.0.0.1:6379/{PACING_REDIS_DB}"


def test_two_workers_sending_for_one_account_stay_within_its_rate(workers):
    redis.Redis.from_url(PACING_URL).flushdb()  # this suite's own pacing database
    workspace = Workspace.objects.create(name="Paced Brand", slug="paced-brand")
    owner = MembershipFactory(workspace=workspace).user
    connect_instagram(workspace, account_id=ACCOUNT)
    now = timezone.now()
    Contact.objects.bulk_create([
        Contact(workspace=workspace, igsid=f"7{i:012d}", username=f"p_{i}", source="dm", captured_at=now,
                last_inbound_at=now - datetime.timedelta(minutes=i % 600)) for i in range(PER_CAMPAIGN)
    ])
    bonus_grant(workspace=workspace, amount=PER_CAMPAIGN, reason="fault test", granted_by=None)
    campaigns = [campaign_create(workspace=workspace, name=f"Drop {n}", text=f"Drop {n}") for n in range(2)]

    with SendApiStandIn(delay=0.01) as meta:
        env = {"INSTAGRAM_SEND_BACKEND": "graph", "META_GRAPH_API_BASE": meta.base_url,
               "META_SEND_RATE": str(RATE), "META_CONVERSATION_RATE_SHARE": "0", "META_SEND_CONCURRENCY": "8",
               "META_PACING_URL": PACING_URL, "CAMPAIGN_NETWORK_BATCH_SIZE": "60"}
        workers.start(extra_env=env)
        workers.start(extra_env=env)
        with broker(BROKER_URL):
            for campaign in campaigns:
                campaign_launch(campaign=campaign, launched_by=owner)
        wait_until(lambda: Campaign.objects.filter(pk__in=[c.pk for c in campaigns],
                                                   status=Campaign.Status.DONE).count() == 2,
                   timeout=120, interval=0.2, what="both campaigns to be sent")
        per_second = meta.per_second(ACCOUNT)
        calls = meta.accepted(ACCOUNT)

    assert sum(per_second.values()) == 2 * PER_CAMPAIGN
    spans = {text: (min(c.at for c in calls if c.text == text), max(c.at for c in calls if c.text == text))
             for text in ("Drop 0", "Drop 1")}
    # Both workers were sending at the same time (each campaign's sends overlap the other's)...
    (first_start, first_end), (second_start, second_end) = spans.values()
    assert first_start < second_end and second_start < first_end
    # ...and together they never went above the account's rate in any second Meta saw.
    assert max(per_second.values()) <= RATE, per_second
    assert_no_drift()
