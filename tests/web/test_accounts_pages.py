"""Sign in, sign out, password reset, the home redirect and the workspace switcher."""

import re

import pytest
from django.core import mail
from django.urls import reverse
from django.utils import timezone

from accounts.models import Membership
from tests.factories import MembershipFactory, UserFactory, WorkspaceFactory

pytestmark = pytest.mark.django_db


def test_sign_in_with_any_case_lands_on_the_usage_page(client, workspace, owner):
    response = client.post("/login/", {"username": owner.email.upper(), "password": "correct-horse-battery"})
    assert response.status_code == 302 and response["Location"] == "/"
    home = client.get("/")
    assert home["Location"] == f"/w/{workspace.pk}/"


def test_a_wrong_password_says_so_and_signs_nobody_in(client, owner):
    response = client.post("/login/", {"username": owner.email, "password": "nope"})
    assert response.status_code == 200
    assert "That email and password don&#x27;t match an account." in response.content.decode()
    assert "_auth_user_id" not in client.session


def test_sign_out_is_a_post(client, owner):
    client.force_login(owner)
    assert client.get("/logout/").status_code == 405
    response = client.post("/logout/")
    assert response.status_code == 302 and response["Location"] == "/login/"
    assert "_auth_user_id" not in client.session


def test_password_reset_emails_a_working_link(client, owner):
    response = client.post("/password-reset/", {"email": owner.email})
    assert response["Location"] == reverse("password_reset_done")
    assert len(mail.outbox) == 1 and mail.outbox[0].subject == "Reset your Inro password"
    link = re.search(r"http://testserver(/password-reset/\S+/\S+/)", mail.outbox[0].body).group(1)

    form = client.get(link, follow=True)
    assert "Choose a new password" in form.content.decode()
    done = client.post(form.redirect_chain[-1][0], {"new_password1": "a-new-long-passphrase-26",
                                                    "new_password2": "a-new-long-passphrase-26"})
    assert done["Location"] == reverse("password_reset_complete")
    owner.refresh_from_db()
    assert owner.check_password("a-new-long-passphrase-26")


def test_password_reset_for_an_unknown_email_sends_nothing(client, db):
    response = client.post("/password-reset/", {"email": "nobody@example.test"})
    assert response["Location"] == reverse("password_reset_done")
    assert mail.outbox == []


def test_a_user_without_workspace_gets_a_plain_page(client, db):
    client.force_login(UserFactory())
    response = client.get("/")
    assert response.status_code == 200
    assert "You're not in a workspace yet" in response.content.decode()


def test_the_switcher_lists_every_workspace_and_home_remembers_the_last(client, workspace, owner):
    second = WorkspaceFactory(name="Zeta Shoes")
    MembershipFactory(user=owner, workspace=second, role=Membership.Role.MEMBER)
    client.force_login(owner)

    page = client.get(f"/w/{second.pk}/").content.decode()

    assert f'href="/w/{workspace.pk}/"' in page and f'href="/w/{second.pk}/" aria-current="true"' in page
    assert client.get("/")["Location"] == f"/w/{second.pk}/"


def test_a_deleted_workspace_is_404(owner_client, workspace):
    workspace.deleted_at = timezone.now()
    workspace.save(update_fields=["deleted_at"])
    assert owner_client.get(f"/w/{workspace.pk}/").status_code == 404


def test_not_found_pages_are_friendly(owner_client, workspace):
    response = owner_client.get(f"/w/{workspace.pk + 1000}/")
    assert response.status_code == 404
    assert "We can't find that page" in response.content.decode()
