"""Integrations: outgoing webhooks pushing contact data (an automated action, kind integration).

Each push is a delivery row (unique per integration and idempotency key, so a retried step pushes
once), delivered by a task: the body is signed with HMAC-SHA256 of the raw bytes and the
integration's secret (`X-Inro-Signature: sha256=<hex>`), and failures are retried with backoff.
"""

import datetime
import hashlib
import hmac
import json
import logging
import secrets

from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from accounts.models import Workspace
from automations import enqueue
from automations.models import Integration, IntegrationDelivery, PausedAction
from automations.services.alerts import usage_alerts_check
from automations.services.engagement import outcome_settle
from automations.services.paused import PauseItem, paused_actions_create
from billing.activation import activate
from billing.models import AutomationKind
from contacts.models import Contact
from inro import outbound
from inro.errors import ApplicationError

logger = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Inro-Signature"
DELIVERY_TIMEOUT_SECONDS = 10


def _clean_url(url: str) -> str:
    """An http(s) URL that resolves only to public addresses (inro.outbound); a 400 saying why not."""
    return outbound.url_checked(url)


def integration_create(*, workspace: Workspace, name: str, url: str) -> Integration:
    name = (name or "").strip()
    if not name or len(name) > 120:
        raise ApplicationError("An integration needs a name of 1 to 120 characters.", code="invalid",
                               fields={"name": ["Enter 1 to 120 characters."]})
    return Integration.objects.create(workspace=workspace, name=name, url=_clean_url(url))


def integration_update(
    *, integration: Integration, name: str | None = None, url: str | None = None, enabled: bool | None = None,
    new_secret: bool = False,
) -> Integration:
    """Rename, point elsewhere (checked like a new one), turn on or off, or give it a new secret (the
    receiver must then check signatures with the new one)."""
    changes: dict = {}
    if name is not None:
        name = name.strip()
        if not name or len(name) > 120:
            raise ApplicationError("An integration needs a name of 1 to 120 characters.", code="invalid",
                                   fields={"name": ["Enter 1 to 120 characters."]})
        changes["name"] = name
    if url is not None:
        changes["url"] = _clean_url(url)
    if enabled is not None:
        changes["enabled"] = bool(enabled)
    if new_secret:
        changes["secret"] = secrets.token_urlsafe(32)
    if changes:
        Integration.objects.filter(pk=integration.pk).update(**changes)
        for field, value in changes.items():
            setattr(integration, field, value)
    return integration


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def contact_payload(contact: Contact) -> dict:
    return {
        "id": contact.pk, "igsid": contact.igsid, "username": contact.username, "name": contact.name,
        "source": contact.source, "email": contact.email, "phone": contact.phone,
        "custom_fields": contact.custom_fields or {}, "follower_count": contact.follower_count,
        "tags": sorted(contact.tags.values_list("name", flat=True)),
        "captured_at": contact.captured_at.isoformat() if contact.captured_at else None,
        "last_inbound_at": contact.last_inbound_at.isoformat() if contact.last_inbound_at else None,
    }


def _deliver_after_commit(delivery_id: int) -> None:
    transaction.on_commit(lambda: enqueue.integration_deliver(delivery_id))


def _delivery_create(integration: Integration, contact: Contact, event: str, idempotency_key: str,
                     data: dict, held_month: datetime.date | None = None) -> IntegrationDelivery:
    """The delivery row, queued after commit; it carries the reservation `held_month` (rule 13), which
    its delivery confirms (2xx) or releases (given up). A push already made keeps its own: this
    call's reservation is settled at once by what became of it."""
    payload = {"event": event, "workspace_id": integration.workspace_id, "contact": contact_payload(contact),
               "data": data}
    try:
        with transaction.atomic():
            delivery = IntegrationDelivery.objects.create(
                integration=integration, contact=contact, event=event, idempotency_key=idempotency_key[:128],
                payload=payload, held_month=held_month,
            )
            _deliver_after_commit(delivery.pk)
            return delivery
    except IntegrityError:
        existing = IntegrationDelivery.objects.get(integration=integration, idempotency_key=idempotency_key[:128])
        if held_month is not None:
            outcome_settle(workspace_id=integration.workspace_id, month=held_month, kind=AutomationKind.INTEGRATION,
                           ref=integration.ref, contact_id=contact.pk,
                           outcome="delivered" if existing.status == IntegrationDelivery.Status.DELIVERED
                           else "already_pushed")
        return existing


def _delivery_settle(delivery: IntegrationDelivery, outcome: str) -> None:
    """Confirm (receiver answered 2xx) or release (given up) the reservation the delivery holds, once."""
    month = delivery.held_month
    if month is None or delivery.contact_id is None:
        return
    if not IntegrationDelivery.objects.filter(pk=delivery.pk, held_month=month).update(held_month=None):
        return  # settled by a concurrent attempt
    outcome_settle(workspace_id=delivery.integration.workspace_id, month=month, kind=AutomationKind.INTEGRATION,
                   ref=delivery.integration.ref, contact_id=delivery.contact_id, outcome=outcome)


def integration_push(
    *, integration: Integration, contact: Contact, event: str, idempotency_key: str, data: dict | None = None,
) -> IntegrationDelivery | None:
    """Push a contact to the integration; None if the gate refused (the push is paused, rule 4)."""
    if contact.workspace_id != integration.workspace_id:
        raise ValueError("The contact belongs to another workspace.")
    data = data or {}
    decision = activate(integration.workspace, contact, kind=AutomationKind.INTEGRATION, ref=integration.ref,
                        confirm=False)
    if not decision.allowed:
        paused_actions_create(
            workspace=integration.workspace, kind=AutomationKind.INTEGRATION, automation_ref=integration.ref,
            action_type=PausedAction.ActionType.INTEGRATION_PUSH, needs_window=False,
            items=[PauseItem(contact, f"{integration.ref}:{idempotency_key}"[:128],
                             {"integration_id": integration.pk, "event": event, "idempotency_key": idempotency_key,
                              "data": data})],
        )
        usage_alerts_check(workspace=integration.workspace)
        return None
    if decision.newly_activated:
        usage_alerts_check(workspace=integration.workspace)
    return _delivery_create(integration, contact, event, idempotency_key, data,
                            held_month=decision.month if decision.held else None)


def integration_push_resume(*, action: PausedAction, now: datetime.datetime) -> str:
    integration = Integration.objects.filter(pk=action.payload.get("integration_id")).first()
    if integration is None or not integration.enabled:
        return "integration_off"
    held = getattr(action, "held_month", None) if getattr(action, "may_release", True) else None
    _delivery_create(integration, action.contact, action.payload["event"], action.payload["idempotency_key"],
                     action.payload.get("data") or {}, held_month=held)
    return "queued"


def integration_delivery_attempt(*, delivery_id: int) -> str:
    """One POST of the delivery: 'delivered', 'done' (nothing to do) or 'retry'."""
    delivery = IntegrationDelivery.objects.select_related("integration").get(pk=delivery_id)
    if delivery.status != IntegrationDelivery.Status.PENDING:
        return "done"
    integration = delivery.integration
    body = json.dumps({**delivery.payload, "delivery_id": delivery.pk}, sort_keys=True).encode()
    headers = {"Content-Type": "application/json", SIGNATURE_HEADER: sign(integration.secret, body),
               "X-Inro-Delivery": str(delivery.pk), "X-Inro-Event": delivery.event, "User-Agent": "Inro-Webhooks/1"}
    code, error = None, ""
    try:
        # Checked again now, and connected to the checked address: the name may resolve elsewhere today.
        code = outbound.post(integration.url, body=body, headers=headers, timeout=DELIVERY_TIMEOUT_SECONDS)
    except outbound.UnsafeURLError as refused:
        error = refused.message[:2000]
    except OSError as network_error:
        error = str(network_error)[:2000]
    if code is not None and not 200 <= code < 300:
        error = f"HTTP {code}" + (" (redirects are not followed)" if 300 <= code < 400 else "")
    delivered = code is not None and 200 <= code < 300
    IntegrationDelivery.objects.filter(pk=delivery.pk).update(
        attempts=F("attempts") + 1, last_status_code=code, last_error="" if delivered else error,
        **({"status": IntegrationDelivery.Status.DELIVERED, "delivered_at": timezone.now()} if delivered else {}),
    )
    if delivered:
        _delivery_settle(delivery, "delivered")  # the receiver accepted the push: the contact is engaged
    # A failure keeps the reservation while the task retries (rule 13).
    return "delivered" if delivered else "retry"


def integration_delivery_give_up(*, delivery_id: int) -> None:
    if IntegrationDelivery.objects.filter(pk=delivery_id, status=IntegrationDelivery.Status.PENDING).update(
        status=IntegrationDelivery.Status.FAILED
    ):
        delivery = IntegrationDelivery.objects.select_related("integration").get(pk=delivery_id)
        _delivery_settle(delivery, "delivery_failed")
