"""Account writes: creating workspaces and memberships."""

from django.db import transaction
from django.utils.text import slugify

from accounts.models import Membership, User, Workspace


def _unique_slug(name: str) -> str:
    base = slugify(name)[:60] or "workspace"
    slug, n = base, 1
    while Workspace.objects.filter(slug=slug).exists():
        n += 1
        slug = f"{base}-{n}"
    return slug


@transaction.atomic
def workspace_create(*, name: str, owner: User, instagram_account_id: str = "") -> Workspace:
    """A new workspace with its owner. It starts on Free: no subscription row means Free."""
    name = name.strip()
    if not name:
        raise ValueError("A workspace needs a name.")
    workspace = Workspace.objects.create(
        name=name, slug=_unique_slug(name), instagram_account_id=instagram_account_id
    )
    Membership.objects.create(user=owner, workspace=workspace, role=Membership.Role.OWNER)
    return workspace


def membership_add(*, workspace: Workspace, user: User, role: str = Membership.Role.MEMBER) -> Membership:
    membership, _ = Membership.objects.update_or_create(
        workspace=workspace, user=user, defaults={"role": role}
    )
    return membership
