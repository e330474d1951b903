"""factory-boy factories shared by the whole suite."""

import factory
from django.utils import timezone

from accounts.models import Membership, User, Workspace
from billing.models import Plan, Subscription
from contacts.models import Contact, Folder


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        django_get_or_create = ["email"]

    email = factory.Sequence(lambda n: f"user{n}@example.test")
    full_name = factory.Faker("name")
    password = factory.django.Password("correct-horse-battery")


class WorkspaceFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Workspace

    name = factory.Sequence(lambda n: f"Brand {n}")
    slug = factory.Sequence(lambda n: f"brand-{n}")


class MembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Membership

    user = factory.SubFactory(UserFactory)
    workspace = factory.SubFactory(WorkspaceFactory)
    role = Membership.Role.OWNER


class ContactFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Contact

    workspace = factory.SubFactory(WorkspaceFactory)
    igsid = factory.Sequence(lambda n: f"{17841400000000000 + n}")
    username = factory.Sequence(lambda n: f"lead_{n}")
    # Deterministic names: a random one could match a search term in a test ("ava" in "Savannah").
    name = factory.Sequence(lambda n: f"Lead {n}")
    source = Contact.Source.DM
    captured_at = factory.LazyFunction(timezone.now)
    last_inbound_at = factory.LazyFunction(timezone.now)


class FolderFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Folder

    workspace = factory.SubFactory(WorkspaceFactory)
    name = factory.Sequence(lambda n: f"Folder {n}")


def pro_subscription(workspace: Workspace, *, addon_packs: int = 0) -> Subscription:
    return Subscription.objects.create(
        workspace=workspace, plan=Plan.objects.get(code=Plan.PRO), addon_packs=addon_packs,
        status=Subscription.Status.ACTIVE,
    )


def connect_instagram(workspace: Workspace, *, account_id: str | None = None, username: str = "",
                      token: str | None = None, expires_in_days: int = 60, refreshed_days_ago: int = 0,
                      status: str = "active"):
    """The workspace's own Instagram account, as the connect flow stores it (token encrypted)."""
    import datetime

    from contacts.models import InstagramConnection
    from contacts.tokens import token_encrypt

    account_id = account_id or f"178414{workspace.pk:011d}"
    token = token or f"IGAAtest{workspace.pk}token"
    now = timezone.now()
    Workspace.objects.filter(pk=workspace.pk).update(instagram_account_id=account_id)
    workspace.instagram_account_id = account_id
    return InstagramConnection.objects.create(
        workspace=workspace, account_id=account_id, username=username or f"brand{workspace.pk}",
        token_encrypted=token_encrypt(token), token_expires_at=now + datetime.timedelta(days=expires_in_days),
        token_refreshed_at=now - datetime.timedelta(days=refreshed_days_ago), status=status,
    )
