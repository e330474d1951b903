"""The staff admin: find workspaces, read-only ledger, bonus grants through the service, plans."""

import pytest
from django.contrib.auth.models import Group, Permission
from django.urls import reverse

from automations.models import PausedAction
from automations.services import campaign_create, campaign_launch
from billing import hooks
from billing.activation import activate_many, usage
from billing.models import ActivationRecord, BonusGrant, Plan
from billing.services import bonus_grant
from tests.factories import ContactFactory, MembershipFactory, UserFactory, WorkspaceFactory, pro_subscription

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_client(client, admin_user):
    client.force_login(admin_user)
    return client


def test_workspace_search_by_owner_email_and_stripe_customer(staff_client):
    target = WorkspaceFactory(name="Sunny Skincare")
    MembershipFactory(workspace=target, user=UserFactory(email="dana@sunny.test"))
    other = WorkspaceFactory(name="Corner Coffee")
    pro_subscription(other).__class__.objects.filter(workspace=other).update(stripe_customer_id="cus_42")
    url = reverse("admin:accounts_workspace_changelist")

    by_email = staff_client.get(url, {"q": "dana@sunny"}).content.decode()
    by_customer = staff_client.get(url, {"q": "cus_42"}).content.decode()

    assert "Sunny Skincare" in by_email and "Corner Coffee" not in by_email
    assert "Corner Coffee" in by_customer and "Sunny Skincare" not in by_customer


def test_limit_reached_filter(staff_client):
    full, calm = WorkspaceFactory(name="Full Brand"), WorkspaceFactory(name="Calm Brand")
    activate_many(full, ContactFactory.create_batch(100, workspace=full), kind="campaign")
    usage(calm)

    page = staff_client.get(reverse("admin:accounts_workspace_changelist"), {"limit_reached": "yes"}).content.decode()

    assert "Full Brand" in page and "Calm Brand" not in page


def test_workspace_page_shows_this_months_usage(staff_client):
    workspace = WorkspaceFactory()
    activate_many(workspace, ContactFactory.create_batch(7, workspace=workspace), kind="campaign")

    page = staff_client.get(reverse("admin:accounts_workspace_change", args=[workspace.pk])).content.decode()

    assert "7 / 100" in page
    assert f"workspace__id__exact={workspace.pk}" in page
    assert "0 paused actions waiting" in page
    assert "No plan changes yet" in page


def test_ledger_is_read_only_even_for_a_superuser(staff_client):
    workspace = WorkspaceFactory()
    activate_many(workspace, ContactFactory.create_batch(2, workspace=workspace), kind="campaign")
    record = ActivationRecord.objects.first()

    assert staff_client.get(reverse("admin:billing_activationrecord_add")).status_code == 403
    assert staff_client.post(reverse("admin:billing_activationrecord_delete", args=[record.pk]),
                             {"post": "yes"}).status_code == 403
    staff_client.post(reverse("admin:billing_activationrecord_change", args=[record.pk]), {"kind": "scenario"})
    record.refresh_from_db()
    assert record.kind == "campaign"
    assert ActivationRecord.objects.count() == 2


def test_ledger_csv_export_follows_the_filters(staff_client):
    first, second = WorkspaceFactory(), WorkspaceFactory()
    activate_many(first, ContactFactory.create_batch(3, workspace=first), kind="campaign")
    activate_many(second, ContactFactory.create_batch(2, workspace=second), kind="scenario")

    response = staff_client.get(reverse("admin:billing_activationrecord_export"), {"kind__exact": "scenario"})
    lines = b"".join(response.streaming_content).decode().strip().splitlines()

    assert lines[0].startswith("activated_at,month,workspace")
    assert len(lines) == 3 and all(",scenario," in line for line in lines[1:])


def test_bonus_grant_form_requires_a_reason_and_changes_nothing_without_it(staff_client):
    workspace = WorkspaceFactory()
    url = reverse("admin:accounts_workspace_grant_bonus", args=[workspace.pk])

    page = staff_client.post(url, {"amount": "50", "reason": "  ", "apply": "1"}).content.decode()

    assert "This field is required" in page or "Say why" in page
    assert BonusGrant.objects.count() == 0
    assert usage(workspace).quota == 100


def test_bonus_grant_action_goes_through_the_service(staff_client, admin_user, django_capture_on_commit_callbacks):
    workspace = WorkspaceFactory()
    told = []
    hooks.on_headroom_raised(lambda workspace_id, month: told.append(workspace_id))

    with django_capture_on_commit_callbacks(execute=True):
        response = staff_client.post(reverse("admin:accounts_workspace_changelist"), {
            "action": "grant_bonus_action", "_selected_action": [workspace.pk],
            "amount": "50", "reason": "Apology for the outage", "apply": "1",
        })

    assert response.status_code == 302
    grant = BonusGrant.objects.get()
    assert (grant.amount, grant.reason, grant.granted_by) == (50, "Apology for the outage", admin_user)
    assert usage(workspace).quota == 150
    assert told == [workspace.pk]


def test_staff_without_the_permission_cannot_grant(client):
    staff = UserFactory(is_staff=True)
    staff.user_permissions.add(Permission.objects.get(codename="view_workspace"))
    client.force_login(staff)
    workspace = WorkspaceFactory()

    response = client.post(reverse("admin:accounts_workspace_grant_bonus", args=[workspace.pk]),
                           {"amount": "50", "reason": "why not", "apply": "1"})

    assert response.status_code == 403
    assert BonusGrant.objects.count() == 0


def test_plan_edit_applies_next_month_unless_apply_now(staff_client):
    workspace = WorkspaceFactory()
    pro_subscription(workspace)
    assert usage(workspace).quota == 1000
    pro = Plan.objects.get(code="pro")
    url = reverse("admin:billing_plan_change", args=[pro.pk])
    form = {
        "code": "pro", "name": "Pro", "monthly_activations": "1500", "price_cents": "4900", "currency": "usd",
        "addon_pack_size": "1000", "addon_pack_price_cents": "2900", "stripe_price_id": "price_x",
        "stripe_addon_price_id": "price_y", "is_public": "on", "sort_order": "1",
    }

    staff_client.post(url, form)
    assert usage(workspace).quota == 1000  # this month keeps its quota

    staff_client.post(url, {**form, "apply_now": "on"})
    assert usage(workspace).quota == 1500


def test_workspace_list_has_no_per_row_queries(staff_client, django_assert_max_num_queries):
    for _ in range(30):
        pro_subscription(WorkspaceFactory())
    with django_assert_max_num_queries(12):
        response = staff_client.get(reverse("admin:accounts_workspace_changelist"))
    assert response.status_code == 200


def test_ledger_list_has_no_per_row_queries(staff_client, django_assert_max_num_queries):
    workspace = WorkspaceFactory()
    activate_many(workspace, ContactFactory.create_batch(80, workspace=workspace), kind="campaign")
    with django_assert_max_num_queries(10):
        response = staff_client.get(reverse("admin:billing_activationrecord_changelist"))
    assert response.status_code == 200


def test_paused_actions_are_resumed_and_cancelled_through_the_services(client, django_capture_on_commit_callbacks):
    workspace = WorkspaceFactory()
    ContactFactory.create_batch(104, workspace=workspace)
    campaign = campaign_create(workspace=workspace, name="Launch", text="Hello")
    with django_capture_on_commit_callbacks(execute=True):
        campaign_launch(campaign=campaign, launched_by=None)
    waiting = PausedAction.objects.filter(workspace=workspace, status="waiting").order_by("created_at", "id")
    assert waiting.count() == 4
    bonus_grant(workspace=workspace, amount=2, reason="Goodwill", granted_by=None)  # hook not run: stays paused
    support = UserFactory(is_staff=True)
    support.groups.add(Group.objects.get(name="support"))
    client.force_login(support)
    url = reverse("admin:automations_pausedaction_changelist")
    first, *_, last = list(waiting)

    client.post(url, {"action": "cancel_selected", "_selected_action": [last.pk]})
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(url, {"action": "resume_selected", "_selected_action": [first.pk]}, follow=True)

    # Queued, and run inline here (tests run tasks eagerly), after the request's commit.
    assert "Queued the resume of the waiting actions of 1 workspaces" in response.content.decode()
    statuses = list(PausedAction.objects.filter(workspace=workspace).order_by("created_at", "id")
                    .values_list("status", flat=True))
    assert statuses == ["resumed", "resumed", "waiting", "cancelled"]
    assert usage(workspace).activated == 102
