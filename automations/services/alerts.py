"""Usage alerts (rule 10): at 80% and 100% of the month's quota, once each per workspace and month.

Once is the database's job: UsageAlert has a unique constraint on (workspace, month, threshold), so
two workers crossing the line together create one row and one email. A new month has no rows yet,
so alerts reset by themselves. The email goes after commit; `sent_at` is set only when it went out,
and a periodic task retries the ones that failed.
"""

import datetime
import logging

from django.conf import settings
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone

from accounts.models import Membership, Workspace
from automations import enqueue
from automations.models import UsageAlert
from billing.activation import usage
from billing.checkout import billing_page_url

logger = logging.getLogger(__name__)

ALERT_THRESHOLDS = (80, 100)
# A send claimed longer ago than this is taken to have died with its worker and may be tried again.
SEND_CLAIM_TIMEOUT = datetime.timedelta(minutes=10)
MAX_SEND_ATTEMPTS = 10


def usage_alerts_check(*, workspace: Workspace) -> list[UsageAlert]:
    """Create the alerts this month's usage has crossed; each new one is emailed after commit."""
    snapshot = usage(workspace)
    if snapshot.quota <= 0:
        return []
    crossed = [t for t in ALERT_THRESHOLDS if snapshot.activated * 100 >= t * snapshot.quota]
    if not crossed:
        return []
    existing = set(
        UsageAlert.objects.filter(workspace=workspace, month=snapshot.month).values_list("threshold", flat=True)
    )
    created = []
    for threshold in crossed:
        if threshold in existing:
            continue
        try:
            with transaction.atomic():
                alert = UsageAlert.objects.create(workspace=workspace, month=snapshot.month, threshold=threshold)
        except IntegrityError:
            continue  # another worker created it first: that one sends the email
        created.append(alert)
        transaction.on_commit(lambda alert_id=alert.pk: _queue_send(alert_id))
    return created


def _queue_send(alert_id: int) -> None:
    enqueue.usage_alert_send(alert_id)


def _owner_emails(workspace_id: int) -> list[str]:
    return sorted(
        Membership.objects.filter(
            workspace_id=workspace_id, role=Membership.Role.OWNER, user__is_active=True
        ).values_list("user__email", flat=True)
    )


def usage_alert_send(*, alert_id: int, now: datetime.datetime | None = None) -> bool:
    """Email the owners about one alert. Safe to run twice: a sent alert is never sent again."""
    now = now or timezone.now()
    claimed = (
        UsageAlert.objects.filter(pk=alert_id, sent_at__isnull=True, attempts__lt=MAX_SEND_ATTEMPTS)
        .filter(Q(sending_since__isnull=True) | Q(sending_since__lt=now - SEND_CLAIM_TIMEOUT))
        .update(sending_since=now, attempts=F("attempts") + 1)
    )
    if not claimed:
        return False
    alert = UsageAlert.objects.select_related("workspace").get(pk=alert_id)
    recipients = _owner_emails(alert.workspace_id)
    if not recipients:
        UsageAlert.objects.filter(pk=alert_id).update(sending_since=None, last_error="The workspace has no owner.")
        return False
    snapshot = usage(alert.workspace, alert.month)
    if snapshot.quota and snapshot.activated * 100 < alert.threshold * snapshot.quota:
        # The quota rose (upgrade, pack, bonus) before the email went out: it would now be wrong.
        UsageAlert.objects.filter(pk=alert_id).update(
            sending_since=None, attempts=MAX_SEND_ATTEMPTS,
            last_error="Not sent: the quota rose above this threshold before the email went out.",
        )
        return False
    if alert.threshold >= 100:
        subject = f"{alert.workspace.name}: you have used all {snapshot.quota} activations this month"
        advice = ("New contacts are not engaged by automations until next month; their actions are paused and "
                  "resume by themselves. Upgrade or add a pack to resume them now.")
    else:
        subject = f"{alert.workspace.name}: {alert.threshold}% of this month's activations used"
        advice = "Upgrade or add a pack before the limit to keep automations engaging new contacts."
    body = (
        f"{alert.workspace.name} has activated {snapshot.activated} of {snapshot.quota} contacts in "
        f"{alert.month:%B %Y}.\n\n{advice}\n\n"
        f"Usage and forecast: {settings.SITE_URL.rstrip('/')}/w/{alert.workspace_id}/\n"
        f"Plan, packs and prices: {billing_page_url(alert.workspace)}\n"
    )
    try:
        send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, recipients)
    except Exception as error:  # any mail failure is recorded and retried later
        logger.warning("usage alert %s not sent: %s", alert_id, error)
        UsageAlert.objects.filter(pk=alert_id).update(sending_since=None, last_error=str(error)[:2000])
        return False
    UsageAlert.objects.filter(pk=alert_id).update(sent_at=now, sending_since=None, last_error="")
    return True


def usage_alerts_unsent_ids(*, now: datetime.datetime | None = None) -> list[int]:
    """Alerts whose email has not gone out yet (and is not being sent right now)."""
    now = now or timezone.now()
    return list(
        UsageAlert.objects.filter(sent_at__isnull=True, attempts__lt=MAX_SEND_ATTEMPTS)
        .filter(Q(sending_since__isnull=True) | Q(sending_since__lt=now - SEND_CLAIM_TIMEOUT))
        .order_by("pk")
        .values_list("pk", flat=True)[:500]
    )
