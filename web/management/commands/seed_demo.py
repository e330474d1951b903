"""Demo data for `make run`: a brand on Pro with a few thousand contacts and a history, and a brand
near its Free limit. Idempotent: a second run finds the demo workspaces and changes nothing.

The figures add up the way real traffic would: this month's activations are spread over the days
elapsed, each points at a real automation of the workspace with the runs, memberships, jobs or
deliveries that made it, and the Pro subscription is one the local Stripe stand-in knows
(`cus_demo` / `sub_demo`, billing.fakestripe.views.known_from_database)."""

import datetime
import random

from django.core.management.base import BaseCommand
from django.db import transaction
from django.utils import timezone

from accounts.models import Membership, User, Workspace
from automations import services as automation_services
from automations.models import (
    Campaign,
    EnrichmentJob,
    Integration,
    IntegrationDelivery,
    Scenario,
    ScenarioRun,
    Segment,
    SegmentMembership,
)
from billing.activation import activate_many, history_import, usage
from billing.integrity import usage_breakdown_rebuild
from billing.models import ActivationRecord, AutomationKind, Plan, Subscription
from billing.months import month_of, month_start, previous_month
from billing.services import quota_refresh
from contacts.fakemeta.demo import demo_connect
from contacts.models import Contact, Folder, FolderMembership, Message, Tag
from inro.celery import app as celery_app

DEMO_EMAIL = "owner@demo.inro.test"
DEMO_PASSWORD = "demo-password-2026"  # noqa: S105 - printed for the demo login on purpose
SOURCES = [choice for choice, _ in Contact.Source.choices]


class Command(BaseCommand):
    help = "Create demo workspaces, contacts and activations (idempotent)."

    def add_arguments(self, parser):
        parser.add_argument("--contacts", type=int, default=3000, help="Contacts in the main demo workspace.")

    def handle(self, *args, contacts: int, **options):
        if contacts < 200 or contacts > 200_000:
            self.stderr.write("--contacts must be between 200 and 200000.")
            raise SystemExit(2)
        rng = random.Random(2026)  # noqa: S311 - demo data, not security
        owner = self._user(DEMO_EMAIL, "Dana Demo")
        brand = self._workspace("Sunny Skincare", "sunny-skincare", "17841400000000001", owner)
        near = self._workspace("Corner Coffee", "corner-coffee", "17841400000000002", owner)
        # Offline demo: both come connected to the local Meta stand-in (contacts/fakemeta).
        demo_connect(workspace=brand, username="sunny.skincare")
        demo_connect(workspace=near, username="corner.coffee")
        if not Subscription.objects.filter(workspace=brand).exists():
            now = timezone.now()
            Subscription.objects.create(
                workspace=brand, plan=Plan.objects.get(code=Plan.PRO), addon_packs=1,
                status=Subscription.Status.ACTIVE, stripe_customer_id="cus_demo", stripe_subscription_id="sub_demo",
                current_period_start=now - datetime.timedelta(days=10),
                current_period_end=now + datetime.timedelta(days=20),
            )
            quota_refresh(workspace=brand)
        # Rows seeded before the stand-in knew them get its subscription id too.
        Subscription.objects.filter(stripe_customer_id="cus_demo", stripe_subscription_id="").update(
            stripe_subscription_id="sub_demo")
        self._contacts(brand, contacts, rng)
        self._contacts(near, 400, rng)
        self._automations(brand, near)
        self._history(brand, rng)
        self._activate_now(brand, 1300, rng)
        self._activate_now(near, 92, rng)
        self._campaigns(brand, near)
        self._inbox(brand)
        brand_usage, near_usage = usage(brand), usage(near)
        self.stdout.write(self.style.SUCCESS(
            f"Demo ready: {brand.name} {brand_usage.activated}/{brand_usage.quota} activated, "
            f"{near.name} {near_usage.activated}/{near_usage.quota} (near its Free limit)."
        ))
        self.stdout.write(f"Demo login: {DEMO_EMAIL} / {DEMO_PASSWORD}")

    def _user(self, email: str, name: str) -> User:
        user, created = User.objects.get_or_create(email=email, defaults={"full_name": name})
        if created:
            user.set_password(DEMO_PASSWORD)
            user.save(update_fields=["password"])
        if not User.objects.filter(email="staff@demo.inro.test").exists():
            User.objects.create_superuser("staff@demo.inro.test", DEMO_PASSWORD, full_name="Sam Staff")
        return user

    def _workspace(self, name: str, slug: str, igid: str, owner: User) -> Workspace:
        workspace, _ = Workspace.objects.get_or_create(
            slug=slug, defaults={"name": name, "instagram_account_id": igid}
        )
        Membership.objects.get_or_create(user=owner, workspace=workspace, defaults={"role": Membership.Role.OWNER})
        return workspace

    @transaction.atomic
    def _contacts(self, workspace: Workspace, count: int, rng: random.Random) -> None:
        existing = workspace.contacts.count()
        if existing >= count:
            return
        now = timezone.now()
        first_names = ["ava", "leo", "mia", "noah", "zoe", "liam", "ivy", "omar", "nina", "theo", "sara", "yuki"]
        rows = []
        for n in range(existing, count):
            captured = now - datetime.timedelta(days=rng.randint(0, 120), minutes=rng.randint(0, 1440))
            inbound = captured + datetime.timedelta(days=rng.randint(0, 10)) if rng.random() < 0.8 else None
            handle = f"{rng.choice(first_names)}.{workspace.slug.split('-')[0]}{n}"
            rows.append(Contact(
                workspace=workspace, igsid=f"{workspace.pk}{900000000 + n}", username=handle,
                name=handle.split(".")[0].title(), source=rng.choice(SOURCES), captured_at=captured,
                last_inbound_at=min(inbound, now) if inbound else None,
            ))
        Contact.objects.bulk_create(rows, batch_size=2000)
        vip, _ = Folder.objects.get_or_create(workspace=workspace, name="VIP")
        for tag_name in ("customer", "giveaway", "wholesale"):
            Tag.objects.get_or_create(workspace=workspace, name=tag_name)
        FolderMembership.objects.bulk_create(
            [FolderMembership(folder=vip, contact=c) for c in workspace.contacts.order_by("?")[:25]],
            ignore_conflicts=True,
        )

    def _refs(self, workspace: Workspace) -> list[tuple[str, str]]:
        """(kind, reference) of the workspace's own automations that engage contacts outside a campaign."""
        refs = [(AutomationKind.SCENARIO, s.ref) for s in Scenario.objects.filter(workspace=workspace).order_by("pk")]
        refs += [(AutomationKind.SEGMENTATION, f"segment:{s.pk}")
                 for s in Segment.objects.filter(workspace=workspace).order_by("pk")[:1]]
        refs += [(AutomationKind.INTEGRATION, i.ref) for i in Integration.objects.filter(workspace=workspace)[:1]]
        return refs

    def _history(self, workspace: Workspace, rng: random.Random) -> None:
        ids = list(workspace.contacts.values_list("pk", flat=True))
        refs = self._refs(workspace) + [(AutomationKind.CAMPAIGN, c.ref) for c in
                                        Campaign.objects.filter(workspace=workspace).order_by("pk")[:1]]
        month = month_of()
        for back in range(1, 4):
            month = previous_month(month)
            if workspace.monthly_usage.filter(month=month).exists():
                continue
            chosen = rng.sample(ids, min(len(ids), 900 + 150 * back))
            start = datetime.datetime.combine(month, datetime.time(9), tzinfo=datetime.UTC)
            entries = []
            for cid in chosen:
                kind, ref = rng.choice(refs)
                entries.append((cid, start + datetime.timedelta(days=rng.randint(0, 26), minutes=rng.randint(0, 600)),
                                kind, ref))
            history_import(workspace, month=month, entries=entries)

    def _activate_now(self, workspace: Workspace, target: int, rng: random.Random) -> None:
        """This month's activations by the workspace's own automations, each with what did it (a run, a
        membership, an enrichment job, a delivery), spread over the days elapsed."""
        missing = target - usage(workspace).activated
        if missing <= 0:
            return
        ids = list(workspace.contacts.order_by("-last_inbound_at").values_list("pk", flat=True)[: target + 200])
        rng.shuffle(ids)
        ids = ids[:missing]
        refs = self._refs(workspace)
        if workspace.pk != Workspace.objects.get(slug="corner-coffee").pk:
            refs.append((AutomationKind.ENRICHMENT, ""))
        share = max(len(ids) // len(refs), 1)
        for i, (kind, ref) in enumerate(refs):
            chunk = ids[i * share : (i + 1) * share] if i < len(refs) - 1 else ids[i * share :]
            if not chunk:
                continue
            if kind == AutomationKind.ENRICHMENT:
                ref = EnrichmentJob.objects.create(
                    workspace=workspace, contact_ids=chunk, status=EnrichmentJob.Status.DONE,
                    enriched_count=len(chunk), finished_at=timezone.now(),
                ).ref
            activate_many(workspace, chunk, kind=kind, ref=ref)
        self._spread(workspace, rng)
        self._what_did_it(workspace)

    @transaction.atomic
    def _spread(self, workspace: Workspace, rng: random.Random) -> None:
        """Spread the month's activations over the days elapsed, as a month of traffic would be."""
        now = timezone.now()
        start = month_start(month_of())
        seconds = max(int((now - start).total_seconds()), 1)
        records = ActivationRecord.objects.filter(workspace=workspace, month=month_of())
        for pk in records.values_list("pk", flat=True):
            at = start + datetime.timedelta(seconds=rng.randint(0, seconds))
            ActivationRecord.objects.filter(pk=pk).update(activated_at=min(at, now))
        usage_breakdown_rebuild(workspace_id=workspace.pk, month=month_of())

    @transaction.atomic
    def _what_did_it(self, workspace: Workspace) -> None:
        """The runs, memberships and deliveries behind the month's activations, at their times."""
        records = ActivationRecord.objects.filter(workspace=workspace, month=month_of()).values_list(
            "contact_id", "automation_ref", "activated_at")
        scenarios = {s.ref: s for s in Scenario.objects.filter(workspace=workspace)}
        segments = {f"segment:{s.pk}": s for s in Segment.objects.filter(workspace=workspace)}
        integrations = {i.ref: i for i in Integration.objects.filter(workspace=workspace)}
        runs, members, deliveries = [], [], []
        for contact_id, ref, at in records:
            if ref in scenarios:
                runs.append(ScenarioRun(
                    scenario=scenarios[ref], workspace=workspace, contact_id=contact_id,
                    trigger_key=f"demo-month:{contact_id}", trigger_type="message",
                    status=ScenarioRun.Status.COMPLETED, engaged=True, next_step=len(scenarios[ref].steps),
                    started_at=at, finished_at=at + datetime.timedelta(seconds=2),
                ))
            elif ref in segments:
                members.append(SegmentMembership(segment=segments[ref], contact_id=contact_id, added_at=at,
                                                 automation_ref=ref))
            elif ref in integrations:
                deliveries.append(IntegrationDelivery(
                    integration=integrations[ref], contact_id=contact_id, event="contact.activated",
                    idempotency_key=f"demo:{contact_id}", payload={"contact_id": contact_id},
                    status=IntegrationDelivery.Status.DELIVERED, attempts=1, last_status_code=200, created_at=at,
                    delivered_at=at + datetime.timedelta(seconds=1),
                ))
        ScenarioRun.objects.bulk_create(runs, ignore_conflicts=True, batch_size=1000)
        SegmentMembership.objects.bulk_create(members, ignore_conflicts=True, batch_size=1000)
        IntegrationDelivery.objects.bulk_create(deliveries, ignore_conflicts=True, batch_size=1000)

    def _automations(self, brand: Workspace, near: Workspace) -> None:
        """Segments, scenarios and an outgoing integration, made once (campaigns come after the month's
        activations, see _campaigns)."""
        if Scenario.objects.filter(workspace=near, name="Opening hours").exists():
            return
        # Demo data is made inline: tasks queued while seeding run at once, no broker needed.
        eager = celery_app.conf.task_always_eager
        celery_app.conf.CELERY_TASK_ALWAYS_EAGER = True
        try:
            for workspace in (brand, near):
                if not Segment.objects.filter(workspace=workspace).exists():
                    automation_services.segment_create(workspace=workspace, name="Story fans",
                                                       rules={"sources": ["story"]})
                    automation_services.segment_create(workspace=workspace, name="Customers",
                                                       rules={"tags_any": ["customer"]})
            keyword_steps = [{"type": "send_message", "text": "Our price list: sunny.example/prices"},
                             {"type": "add_tag", "tag": "price-asked"}]
            if not Scenario.objects.filter(workspace=brand).exists():
                automation_services.scenario_create(workspace=brand, name="Price auto-reply", trigger_type="dm_keyword",
                                            trigger_config={"keywords": ["price", "prix"]}, steps=keyword_steps)
                automation_services.scenario_create(
                    workspace=brand, name="Giveaway comments", trigger_type="comment", trigger_config={},
                    steps=[{"type": "send_message", "text": "You're in! Check your DMs for the rules."}])
                automation_services.scenario_create(
                    workspace=brand, name="Newsletter sign-up", trigger_type="dm_keyword",
                    trigger_config={"keywords": ["newsletter"]},
                    steps=[{"type": "ask_question", "text": "Great! What's your email?", "field": "email",
                            "answer_type": "email", "retry_text": "Hmm, that doesn't look like an email."},
                           {"type": "send_message", "text": "Subscribed, thank you!"}])
                automation_services.scenario_create(workspace=brand, name="Welcome", trigger_type="new_contact",
                                            steps=[{"type": "send_message", "text": "Welcome to Sunny Skincare!"}])
            automation_services.scenario_create(
                workspace=near, name="Opening hours", trigger_type="dm_keyword",
                trigger_config={"keywords": ["hours", "open"]},
                steps=[{"type": "send_message", "text": "We're open 7am to 6pm, every day."}])
            # Staff-configured until customers can add their own; the demo receiver needs no network.
            Integration.objects.get_or_create(workspace=brand, name="CRM sync",
                                              defaults={"url": "https://crm.example.com/hooks/inro"})
        finally:
            celery_app.conf.CELERY_TASK_ALWAYS_EAGER = eager

    def _campaigns(self, brand: Workspace, near: Workspace) -> None:
        """Campaigns, made once; Corner Coffee's broadcast ends with paused actions."""
        if Campaign.objects.filter(workspace=near, name="Loyalty card").exists():
            return
        eager = celery_app.conf.task_always_eager
        celery_app.conf.CELERY_TASK_ALWAYS_EAGER = True
        try:
            self._campaign(brand, "Autumn launch", "Our autumn serum is here!", Campaign.Audience.ALL)
            automation_services.campaign_create(workspace=brand, name="Winter sale (draft)", text="Winter sale: -30%")
            teaser = automation_services.campaign_create(
                workspace=brand, name="New year teaser", text="Something new is coming",
                scheduled_at=timezone.now() + datetime.timedelta(days=3))
            automation_services.campaign_launch(campaign=teaser, launched_by=None)
            prices = Scenario.objects.get(workspace=brand, name="Price auto-reply")
            for contact in brand.contacts.filter(last_inbound_at__isnull=False).order_by("-last_inbound_at")[:3]:
                automation_services.scenario_start(scenario=prices, contact=contact, trigger_key=f"demo:{contact.pk}",
                                           trigger_type="message")
            # Corner Coffee keeps its last 8 activations for people who write in (the reserve): its
            # broadcast at 92/100 reaches the contacts already active and pauses the others.
            Workspace.objects.filter(pk=near.pk).update(activation_reserve=8)
            self._campaign(near, "Loyalty card", "Your 10th coffee is on us this week!", Campaign.Audience.ALL)
            automation_services.campaign_create(workspace=near, name="Opening-hours change",
                                                text="From Monday we open at 6am")
        finally:
            celery_app.conf.CELERY_TASK_ALWAYS_EAGER = eager

    @transaction.atomic
    def _inbox(self, workspace: Workspace) -> None:
        """A few people wrote in (once): the inbox opens on conversations waiting for a reply, one
        still inside Meta's 24 hours, one in the human-agent days, one closed."""
        if Message.objects.filter(workspace=workspace, direction=Message.Direction.INBOUND).exists():
            return
        now = timezone.now()
        questions = [
            (datetime.timedelta(minutes=12), "Hi! Is the vitamin C serum back in stock?"),
            (datetime.timedelta(hours=3), "Do you ship to Lisbon?"),
            (datetime.timedelta(days=2), "My order hasn't arrived yet, can you check?"),
            (datetime.timedelta(days=9), "Do you have a store in Porto?"),
        ]
        contacts = workspace.contacts.order_by("pk")[: len(questions)]
        for contact, (ago, text) in zip(contacts, questions, strict=False):
            at = now - ago
            Contact.objects.filter(pk=contact.pk).update(last_inbound_at=at)
            Message.objects.create(workspace=workspace, contact=contact, direction=Message.Direction.INBOUND,
                                   origin=Message.Origin.CONTACT, status=Message.Status.RECEIVED, text=text,
                                   created_at=at)

    def _campaign(self, workspace: Workspace, name: str, text: str, audience: str, **target) -> None:
        campaign = automation_services.campaign_create(workspace=workspace, name=name, text=text, audience=audience,
                                                       **target)
        Campaign.objects.filter(pk=campaign.pk).update(status=Campaign.Status.SENDING, launched_at=timezone.now())
        automation_services.campaign_send(campaign_id=campaign.pk)
