"""What tests/ops/scaleout.py seeds, drives and checks (imports Django only after set-up).

The load, per workspace (Free, 100 activations a month): signed Meta webhooks from new senders that
trigger a keyword scenario (each reply activates the sender, until the quota, then pauses), campaign
launches to everyone (through the workers), usage page reads by the owner, and for half of the
workspaces one upgrade to Pro mid-load: Checkout form (CSRF) then Stripe's signed events.
"""

import dataclasses
import json
import secrets
import threading
import time

CSRF = secrets.token_hex(16)  # 32 characters: a valid CSRF secret for both the cookie and the form


@dataclasses.dataclass
class Plan:
    workspace_ids: list[int]
    ig_accounts: dict[int, str]
    cookies: dict[int, str]
    upgradable: set[int]  # upgraded during the load
    upgrade_after_load: set[int]  # upgraded once the load is over, at their limit with actions paused
    fake_stripe: object
    lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)
    senders: int = 0
    upgraded: set[int] = dataclasses.field(default_factory=set)
    campaigns: dict[int, int] = dataclasses.field(default_factory=dict)
    max_campaigns: int = 2
    started_at: float = 0.0
    paused_before_late_upgrades: int = 0
    ends_at: float = 0.0  # set by the driver

    def next_sender(self) -> int:
        with self.lock:
            self.senders += 1
            return self.senders


def start_fake_stripe():
    """Stripe's API for the fleet: a local fake on a loopback port (nothing leaves the machine)."""
    from billing.fakestripe.server import FakeStripeServer

    return FakeStripeServer().start()


def seed(fake_stripe) -> Plan:
    from django.test import Client

    from automations.services import scenario_create
    from tests.factories import MembershipFactory, WorkspaceFactory

    ids, accounts, cookies = [], {}, {}
    for i in range(8):
        workspace = WorkspaceFactory(instagram_account_id=f"1784150000000{i:04d}")
        owner = MembershipFactory(workspace=workspace, user__email=f"owner{i}@scaleout.test").user
        scenario_create(workspace=workspace, name="Price", trigger_type="dm_keyword",
                        trigger_config={"keywords": ["price"]},
                        steps=[{"type": "send_message", "text": "It is 20, here is the link."}])
        client = Client()
        client.force_login(owner)  # a database session: valid on every web server
        ids.append(workspace.pk)
        accounts[workspace.pk] = workspace.instagram_account_id
        cookies[workspace.pk] = f"sessionid={client.cookies['sessionid'].value}; csrftoken={CSRF}"
    return Plan(workspace_ids=ids, ig_accounts=accounts, cookies=cookies, upgradable=set(ids[::4]),
                upgrade_after_load=set(ids[2::4]), fake_stripe=fake_stripe)


def actions(plan: Plan, *, http, meta_signature) -> list:
    def webhook(port, rng):
        workspace_id = rng.choice(plan.workspace_ids)
        sender = plan.next_sender()
        now_ms = int(time.time() * 1000)
        payload = {"object": "instagram", "entry": [{
            "id": plan.ig_accounts[workspace_id], "time": now_ms,
            "messaging": [{"sender": {"id": f"9{sender:015d}"}, "recipient": {"id": plan.ig_accounts[workspace_id]},
                           "timestamp": now_ms, "message": {"mid": f"mid-scaleout-{sender}", "text": "price?"}}],
        }]}
        body = json.dumps(payload).encode()
        return http("POST", port, "/webhooks/instagram/", body,
                    {"Content-Type": "application/json", "X-Hub-Signature-256": meta_signature(body)})[0]

    def usage_read(port, rng):
        workspace_id = rng.choice(plan.workspace_ids)
        return http("GET", port, f"/w/{workspace_id}/billing/", headers={"Cookie": plan.cookies[workspace_id]})[0]

    def campaign_launch(port, rng):
        from django.db import connection

        from automations.services import campaign_create
        from automations.services.campaigns import campaign_launch as launch
        from tests.factories import WorkspaceFactory

        workspace_id = rng.choice(plan.workspace_ids)
        with plan.lock:
            count = plan.campaigns.get(workspace_id, 0)
            if count >= plan.max_campaigns:
                return None  # this workspace had its campaigns: nothing to do
            plan.campaigns[workspace_id] = count + 1
        try:
            workspace = WorkspaceFactory._meta.model.objects.get(pk=workspace_id)
            campaign = campaign_create(workspace=workspace, name=f"Load {count + 1}", text="Hello from the load")
            launch(campaign=campaign, launched_by=None)
            return 200
        except Exception as error:  # reported as a failed request
            print(f"campaign launch failed: {error!r}")
            return 500
        finally:
            connection.close()

    def upgrade(port, rng):
        return _upgrade_during_load(plan, http, port, rng)

    return [("meta_webhook", 12, webhook), ("usage_page", 4, usage_read), ("campaign_launch", 1, campaign_launch),
            ("stripe_upgrade", 1, upgrade)]


def _upgrade_during_load(plan, http, port, rng):
    from django.db import connection

    from billing.models import MonthlyUsage

    # Upgrade a workspace once it is at its limit (so paused actions must resume), or late anyway.
    late = time.monotonic() > plan.started_at + 0.8 * (plan.ends_at - plan.started_at)
    with plan.lock:
        candidates = sorted(plan.upgradable - plan.upgraded)
    if not late:
        candidates = list(MonthlyUsage.objects.filter(workspace_id__in=candidates, limit_reached_at__isnull=False)
                          .values_list("workspace_id", flat=True))
        connection.close()
    with plan.lock:
        candidates = sorted(set(candidates) - plan.upgraded)
        if not candidates:
            return None
        workspace_id = rng.choice(candidates)
        plan.upgraded.add(workspace_id)
    return upgrade_workspace(plan, http, port, workspace_id)


def upgrade_workspace(plan, http, port, workspace_id) -> int:
    """The customer's path: the Checkout form (CSRF), Stripe's page, then Stripe's signed events."""
    from django.conf import settings

    from billing.fakestripe import sign_payload

    form = f"plan=pro&addon_packs=0&csrfmiddlewaretoken={CSRF}".encode()
    status, location = http("POST", port, f"/w/{workspace_id}/billing/checkout/", form, {
        "Cookie": plan.cookies[workspace_id], "Content-Type": "application/x-www-form-urlencoded",
    }, follow=False)
    if status != 302 or "/checkout/pay/" not in location:
        print(f"checkout for workspace {workspace_id}: {status} {location[:200]!r}")
        return status if status >= 400 else 500
    session_id = location.rsplit("/", 1)[-1]
    worst = 200
    for event in plan.fake_stripe.checkout_complete(session_id):
        body = json.dumps(event)
        header = sign_payload(body, settings.STRIPE_WEBHOOK_SECRET)
        code = http("POST", port, "/webhooks/stripe/", body.encode(),
                    {"Content-Type": "application/json", "Stripe-Signature": header})[0]
        worst = max(worst, code) if code else 0
    return worst


def settle(plan: Plan, http, port: int) -> list[int]:
    """After the load: upgrade the workspaces kept at their limit; their paused actions must resume."""
    from django.db import connection

    from automations.models import PausedAction

    plan.paused_before_late_upgrades = PausedAction.objects.filter(
        workspace_id__in=plan.upgrade_after_load, status="waiting").count()
    connection.close()
    statuses = []
    for workspace_id in sorted(plan.upgrade_after_load):
        plan.upgraded.add(workspace_id)
        statuses.append(upgrade_workspace(plan, http, port, workspace_id))
    return statuses


def check(plan: Plan) -> list[tuple[str, bool, str]]:
    from django.db.models import Count, F

    from automations.models import Campaign, CampaignRecipient, PausedAction
    from automations.selectors import campaign_remaining
    from billing.models import ActivationRecord, MonthlyUsage, Subscription
    from contacts.models import Contact, Message, WebhookDelivery

    results = []
    over = MonthlyUsage.objects.filter(activated__gt=F("quota")).count()
    usage_rows = list(MonthlyUsage.objects.filter(workspace_id__in=plan.workspace_ids)
                      .values_list("workspace_id", "activated", "quota"))
    results.append(("activations never above quota", over == 0, f"usage (workspace, activated, quota): {usage_rows}"))
    records = {
        (w, m): n for w, m, n in ActivationRecord.objects.values("workspace_id", "month")
        .annotate(n=Count("id")).values_list("workspace_id", "month", "n")
    }
    drift = [
        (u.workspace_id, u.month, u.activated, records.get((u.workspace_id, u.month), 0))
        for u in MonthlyUsage.objects.all() if u.activated != records.get((u.workspace_id, u.month), 0)
    ]
    detail = f"{sum(records.values())} activations in {len(records)} usage rows, drift {json.dumps(drift, default=str)}"
    results.append(("counters equal records", not drift, detail))

    sent = Message.objects.filter(direction="out").exclude(status="failed")
    twice = list(sent.values("contact_id", "automation_ref").annotate(n=Count("id")).filter(n__gt=1)
                 .values_list("contact_id", "automation_ref", "n")[:10])
    results.append(("no message sent twice", not twice,
                     f"{sent.count()} outbound messages; duplicates (contact, automation, n): {twice}"))

    pending = WebhookDelivery.objects.exclude(status="processed").count()
    results.append(("every webhook delivery processed", pending == 0,
                    f"{WebhookDelivery.objects.count()} deliveries, {pending} not processed, "
                    f"{Contact.objects.filter(workspace_id__in=plan.workspace_ids).count()} contacts"))

    upgraded = set(Subscription.objects.filter(workspace_id__in=plan.upgraded, plan__code="pro")
                   .values_list("workspace_id", flat=True))
    results.append(("every upgrade applied once", upgraded == plan.upgraded,
                    f"{len(plan.upgraded)} upgrades sent, {len(upgraded)} workspaces on Pro"))

    # Paused actions: where the month has headroom, nothing may still wait (rule 5).
    with_headroom = [w for w, activated, quota in usage_rows if activated < quota]
    stuck = PausedAction.objects.filter(workspace_id__in=with_headroom, status="waiting").count()
    by_status = dict(PausedAction.objects.values_list("status").annotate(n=Count("id")).values_list("status", "n"))
    resumed = PausedAction.objects.filter(workspace_id__in=plan.upgrade_after_load, status="resumed").count()
    before = plan.paused_before_late_upgrades
    results.append(("paused actions resumed where headroom came", stuck == 0 and resumed >= before,
                    f"by status {by_status}; waiting before the late upgrades {before}, resumed after them "
                    f"{resumed}; waiting despite headroom: {stuck}"))

    recipients = dict(CampaignRecipient.objects.values_list("status").annotate(n=Count("id"))
                      .values_list("status", "n"))
    unfinished = sum(campaign_remaining(campaign=c) for c in Campaign.objects.filter(
        audience_frozen_at__isnull=False).exclude(status=Campaign.Status.CANCELLED))
    results.append(("every campaign recipient has a final status", unfinished == 0,
                    f"recipients by status {recipients}"))
    return results
