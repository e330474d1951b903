"""Users (login by email), workspaces (one customer account each) and memberships with roles."""

import datetime

from django.conf import settings
from django.contrib.auth.base_user import AbstractBaseUser, BaseUserManager
from django.contrib.auth.models import PermissionsMixin
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.utils import timezone


class UserManager(BaseUserManager["User"]):
    use_in_migrations = True

    def _create_user(self, email: str, password: str | None, **extra_fields) -> "User":
        if not email:
            raise ValueError("An email address is required.")
        user = self.model(email=self.normalize_email(email).lower(), **extra_fields)
        user.set_password(password)
        user.save(using=self._db)
        return user

    def create_user(self, email: str, password: str | None = None, **extra_fields) -> "User":
        extra_fields.setdefault("is_staff", False)
        extra_fields.setdefault("is_superuser", False)
        return self._create_user(email, password, **extra_fields)

    def create_superuser(self, email: str, password: str | None = None, **extra_fields) -> "User":
        extra_fields["is_staff"] = True
        extra_fields["is_superuser"] = True
        return self._create_user(email, password, **extra_fields)


class User(AbstractBaseUser, PermissionsMixin):
    email = models.EmailField(unique=True)
    full_name = models.CharField(max_length=150, blank=True)
    is_staff = models.BooleanField(default=False)
    is_active = models.BooleanField(default=True)
    date_joined = models.DateTimeField(default=timezone.now)

    objects = UserManager()

    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS: list[str] = []

    class Meta:
        ordering = ["email"]

    def __str__(self) -> str:
        return self.email

    def get_full_name(self) -> str:
        return self.full_name or self.email

    def get_short_name(self) -> str:
        return self.full_name.split(" ")[0] if self.full_name else self.email


class Workspace(models.Model):
    """One customer account: a brand with one connected Instagram professional account."""

    name = models.CharField(max_length=120)
    slug = models.SlugField(max_length=80, unique=True)
    instagram_account_id = models.CharField(
        max_length=64, blank=True, help_text="Instagram professional account id (IGID)."
    )
    # Activations campaigns may not use, kept for people who write in (docs/product.md rule 16).
    activation_reserve = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)
    deleted_at = models.DateTimeField(null=True, blank=True)

    members = models.ManyToManyField(User, through="Membership", related_name="workspaces")

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(
                fields=["instagram_account_id"],
                condition=~models.Q(instagram_account_id=""),
                name="accounts_workspace_unique_instagram_account",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def is_deleted(self) -> bool:
        return self.deleted_at is not None


class Membership(models.Model):
    class Role(models.TextChoices):
        OWNER = "owner", "Owner"
        ADMIN = "admin", "Admin"
        MEMBER = "member", "Member"

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="memberships")
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.MEMBER)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "workspace"], name="accounts_membership_once"),
        ]

    def __str__(self) -> str:
        return f"{self.user} in {self.workspace} ({self.role})"

    # The role matrix (docs/roles.md): members read everything and act by hand (manual DMs, folders,
    # tags and fields); admins also run and edit automations; owners also manage billing and members.
    RANK = {Role.MEMBER: 0, Role.ADMIN: 1, Role.OWNER: 2}

    def has_role(self, role: str) -> bool:
        """At least `role` in the matrix (an owner has every admin's and member's rights)."""
        return self.RANK.get(self.role, -1) >= self.RANK[role]

    @property
    def can_manage(self) -> bool:
        """Owners and admins run and edit automations (campaigns, scenarios, segments); members do not."""
        return self.has_role(self.Role.ADMIN)

    @property
    def can_manage_billing(self) -> bool:
        """Only owners change the plan, buy add-on packs and open the payment portal."""
        return self.has_role(self.Role.OWNER)


class ApiToken(models.Model):
    """A mobile device's API key. Only the key's SHA-256 is stored; several per user (one per device)."""

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="api_tokens")
    key_hash = models.CharField(max_length=64, unique=True)
    name = models.CharField(max_length=100, blank=True,
                            help_text="Device name given at login, else one read from its User-Agent.")
    user_agent = models.CharField(max_length=255, blank=True, help_text="The User-Agent that logged in.")
    # The user's session auth hash when the token was made: any password change, by whatever path
    # (API, reset page, admin), makes it differ and the token stops working.
    password_fingerprint = models.CharField(max_length=128, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"token {self.pk} of {self.user}"

    @staticmethod
    def lifetimes() -> tuple[datetime.timedelta, datetime.timedelta]:
        """(idle, absolute): a token stops working unused for API_TOKEN_IDLE_DAYS, or API_TOKEN_MAX_AGE_DAYS
        after its login, whichever comes first."""
        return (datetime.timedelta(days=settings.API_TOKEN_IDLE_DAYS),
                datetime.timedelta(days=settings.API_TOKEN_MAX_AGE_DAYS))

    @property
    def expires_at(self) -> datetime.datetime:
        idle, max_age = self.lifetimes()
        return min((self.last_used_at or self.created_at) + idle, self.created_at + max_age)

    def is_expired(self, now: datetime.datetime | None = None) -> bool:
        return (now or timezone.now()) >= self.expires_at


class IdempotencyKey(models.Model):
    """The first answer to a side-effecting API POST, replayed for the same key (per user and route).

    The unique constraint is what settles two concurrent requests with the same key: one inserts the
    row and runs, the other finds it and gets a conflict while the first is still in flight.
    """

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="+")
    route = models.CharField(max_length=255, help_text="Method and path, e.g. POST /api/v1/...")
    key = models.CharField(max_length=255)
    request_hash = models.CharField(max_length=64)
    created_at = models.DateTimeField(default=timezone.now)
    # Null while the first request is running; then the answer it gave.
    response_status = models.PositiveSmallIntegerField(null=True, blank=True)
    response_body = models.JSONField(null=True, blank=True, encoder=DjangoJSONEncoder)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "route", "key"], name="accounts_idempotency_key_once"),
        ]
        indexes = [models.Index(fields=["created_at"], name="idempotency_created")]

    def __str__(self) -> str:
        return f"{self.route} [{self.key}]"
