"""Payment failures (rule 9): the owners are emailed once per unpaid invoice, and again never."""

import logging

from django.core.mail import send_mail
from django.utils import timezone

from accounts.models import Membership
from billing.checkout import billing_page_url
from billing.models import PaymentFailure

logger = logging.getLogger(__name__)


def payment_failure_email(*, failure_id: int) -> bool:
    """Tell the owners a payment failed (rule 9). Claims the row first so a retry never sends twice."""
    claimed = PaymentFailure.objects.filter(pk=failure_id, emailed_at__isnull=True).update(emailed_at=timezone.now())
    if not claimed:
        return False
    failure = PaymentFailure.objects.select_related("workspace").get(pk=failure_id)
    owners = list(
        Membership.objects.filter(workspace=failure.workspace, role=Membership.Role.OWNER, user__is_active=True)
        .values_list("user__email", flat=True)
    )
    if not owners:
        return False
    amount = f"{failure.amount_due_cents / 100:.2f} {failure.currency.upper()}"
    body = (
        f"Hello,\n\nWe could not collect the payment of {amount} for {failure.workspace.name}'s Pro plan.\n"
        "Your plan and its activations stay as they are while our payment provider retries the card over "
        "the next days. To avoid returning to the Free plan, update your payment method:\n\n"
        f"{billing_page_url(failure.workspace)}\n\n— Inro billing\n"
    )
    try:
        send_mail(f"Payment failed for {failure.workspace.name}", body, None, owners)
    except Exception:
        PaymentFailure.objects.filter(pk=failure_id).update(emailed_at=None)  # let the retry send it
        raise
    return True


def payment_failure_emails_unsent() -> int:
    """Email the payment failures nobody was told about yet (their task was lost to a broker outage)."""
    sent = 0
    for failure_id in PaymentFailure.objects.filter(emailed_at__isnull=True, resolved_at__isnull=True).order_by(
        "pk"
    ).values_list("pk", flat=True)[:500]:
        try:
            sent += payment_failure_email(failure_id=failure_id)
        except Exception:  # the mail server failing: the row stays unsent for the next run
            logger.exception("payment failure %s: email not sent", failure_id)
    return sent
