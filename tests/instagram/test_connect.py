"""Business Login for Instagram end to end against the Meta stand-in: connect, refuse, disconnect, and
two workspaces that each send and receive only as their own account."""

import time
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from django.test import Client
from django.utils import timezone

from accounts.models import Membership, Workspace
from contacts import instagram
from contacts.fakemeta import account_id_for
from contacts.messaging import DeliveryError, send_message
from contacts.meta import SUBSCRIBED_FIELDS, GraphClient
from contacts.models import Contact, InstagramConnection, InstagramConnectState, WebhookDelivery
from contacts.tokens import token_decrypt
from tests.factories import ContactFactory, WorkspaceFactory
from tests.instagram.helpers import connect, consent, deliver_webhook, dm_payload, start_connect, state_of
from tests.instagram.helpers import owner_client as _owner_client

pytestmark = pytest.mark.django_db


def _result(response) -> str:
    return response.content.decode()


def test_the_connect_url_is_instagrams_consent_page_with_a_signed_state(settings, fake_meta):
    workspace = WorkspaceFactory()
    client, user = _owner_client(workspace)

    url = start_connect(client, workspace.pk)

    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == settings.INSTAGRAM_AUTHORIZE_URL
    assert query["client_id"] == settings.META_APP_ID
    assert query["redirect_uri"] == settings.SITE_URL + "/instagram/callback/"
    assert query["response_type"] == "code"
    assert query["scope"] == ("instagram_business_basic,instagram_business_manage_messages,"
                              "instagram_business_manage_comments")
    assert InstagramConnectState.objects.get().workspace_id == workspace.pk


def test_connecting_stores_the_account_and_an_encrypted_long_lived_token(fake_meta):
    workspace = WorkspaceFactory()
    client, user = _owner_client(workspace)

    response = connect(client, workspace.pk, username="sunny.skincare")

    assert response.status_code == 200
    assert "@sunny.skincare is now connected" in _result(response)
    connection = InstagramConnection.objects.get(workspace=workspace)
    # The code exchange's user_id is a JSON number above 2**53: kept exact.
    assert connection.account_id == account_id_for("sunny.skincare") and int(connection.account_id) > 2**53
    assert (connection.username, connection.status, connection.connected_by) == ("sunny.skincare", "active", user)
    token = token_decrypt(connection.token_encrypted)
    assert token.startswith("IGAA") and token not in connection.token_encrypted
    assert fake_meta.token_account(token, kind="long")["a"] == connection.account_id  # the long-lived one
    assert Workspace.objects.get(pk=workspace.pk).instagram_account_id == connection.account_id
    assert fake_meta.subscriptions[connection.account_id] == list(SUBSCRIBED_FIELDS)


def test_the_code_exchange_answer_wrapped_in_data_is_read_too(fake_meta):
    fake_meta.data_shape = True
    workspace = WorkspaceFactory()
    client, _ = _owner_client(workspace)

    assert connect(client, workspace.pk, username="wrapped.brand").status_code == 200
    assert InstagramConnection.objects.get().account_id == account_id_for("wrapped.brand")


def test_a_denied_consent_shows_a_clear_page_and_stores_nothing(fake_meta):
    workspace = WorkspaceFactory()
    client, _ = _owner_client(workspace)

    response = client.get(consent(start_connect(client, workspace.pk), username="x", decision="deny"))

    assert response.status_code == 400
    assert "Instagram access was not granted, so nothing was connected" in _result(response)
    assert not InstagramConnection.objects.exists()
    assert Workspace.objects.get(pk=workspace.pk).instagram_account_id == ""
    assert fake_meta.subscriptions == {}


def test_a_replayed_state_is_refused(fake_meta):
    workspace = WorkspaceFactory()
    client, _ = _owner_client(workspace)
    url = start_connect(client, workspace.pk)
    assert client.get(consent(url, username="first.account")).status_code == 200

    # The same link (same state) answered again, even with a fresh code for another account.
    response = client.get(consent(url, username="second.account"))

    assert response.status_code == 400
    assert "already used" in _result(response)
    assert list(InstagramConnection.objects.values_list("username", flat=True)) == ["first.account"]


def test_an_expired_state_is_refused(fake_meta, monkeypatch):
    workspace = WorkspaceFactory()
    client, _ = _owner_client(workspace)
    callback = consent(start_connect(client, workspace.pk), username="late.brand")
    later = time.time() + 601
    monkeypatch.setattr("django.core.signing.time.time", lambda: later)

    response = client.get(callback)

    assert response.status_code == 400
    assert "expired" in _result(response)
    assert not InstagramConnection.objects.exists()


def test_a_forged_state_is_refused(fake_meta):
    workspace = WorkspaceFactory()
    client, _ = _owner_client(workspace)
    url = start_connect(client, workspace.pk)
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    signed = state_of(url)
    query["state"] = signed[:-4] + ("AAAA" if not signed.endswith("AAAA") else "BBBB")
    forged = f"{parts.scheme}://{parts.netloc}{parts.path}?{urlencode(query)}"

    response = client.get(consent(forged, username="forged.brand"))

    assert response.status_code == 400
    assert "not valid" in _result(response)
    assert not InstagramConnection.objects.exists()


def test_a_failed_code_exchange_shows_a_clear_page_and_stores_nothing(fake_meta, settings):
    workspace = WorkspaceFactory()
    client, _ = _owner_client(workspace)
    callback = consent(start_connect(client, workspace.pk), username="brand")
    settings.META_APP_SECRET = "not-the-app-secret"  # Meta refuses the exchange

    response = client.get(callback)

    assert response.status_code == 400
    assert "Instagram did not complete the connection, so nothing was stored" in _result(response)
    assert not InstagramConnection.objects.exists()
    assert "not-the-app-secret" not in _result(response)


def test_an_account_another_workspace_holds_is_refused_with_a_message_saying_so(fake_meta):
    first, second = WorkspaceFactory(), WorkspaceFactory()
    client_a, _ = _owner_client(first)
    client_b, _ = _owner_client(second)
    assert connect(client_a, first.pk, username="shared.brand").status_code == 200

    response = connect(client_b, second.pk, username="shared.brand")

    assert response.status_code == 400
    assert "@shared.brand is already connected to another workspace" in _result(response)
    assert InstagramConnection.objects.get().workspace_id == first.pk
    assert Workspace.objects.get(pk=second.pk).instagram_account_id == ""


def test_members_cannot_connect_and_outsiders_do_not_see_the_workspace(fake_meta):
    workspace = WorkspaceFactory()
    member, _ = _owner_client(workspace, role=Membership.Role.MEMBER)
    outsider, _ = _owner_client(WorkspaceFactory())

    api_connect = f"/api/v1/workspaces/{workspace.pk}/instagram/connect/"
    assert member.post(api_connect, content_type="application/json").status_code == 403
    assert outsider.post(api_connect, content_type="application/json").status_code == 404
    assert member.post(f"/w/{workspace.pk}/instagram/connect/").status_code == 302
    assert not InstagramConnectState.objects.exists()


def test_the_web_button_redirects_to_the_consent_page(fake_meta, settings):
    workspace = WorkspaceFactory()
    client, _ = _owner_client(workspace)

    page = client.get(f"/w/{workspace.pk}/instagram/")
    assert page.status_code == 200 and "Connect Instagram" in page.content.decode()
    response = client.post(f"/w/{workspace.pk}/instagram/connect/")

    assert response.status_code == 302
    assert response["Location"].startswith(settings.INSTAGRAM_AUTHORIZE_URL + "?")
    # The browser comes back signed out (a phone's browser): the state says who and where.
    assert Client().get(consent(response["Location"], username="web.brand")).status_code == 200
    assert InstagramConnection.objects.get().workspace_id == workspace.pk


def test_disconnect_unsubscribes_and_deletes_the_token_web_and_api(fake_meta):
    workspace = WorkspaceFactory()
    client, _ = _owner_client(workspace)
    connect(client, workspace.pk, username="leaving.brand")
    account_id = account_id_for("leaving.brand")
    assert account_id in fake_meta.subscriptions

    response = client.post(f"/api/v1/workspaces/{workspace.pk}/instagram/disconnect/", content_type="application/json")

    assert response.json() == {"disconnected": True}
    assert account_id not in fake_meta.subscriptions
    assert not InstagramConnection.objects.exists()
    assert Workspace.objects.get(pk=workspace.pk).instagram_account_id == ""
    assert client.get(f"/api/v1/workspaces/{workspace.pk}/instagram/").json()["connected"] is False

    connect(client, workspace.pk, username="leaving.brand")
    response = client.post(f"/w/{workspace.pk}/instagram/disconnect/")
    assert response.status_code == 302
    assert not InstagramConnection.objects.exists()
    assert account_id not in fake_meta.subscriptions


def test_two_workspaces_each_send_with_their_own_token_and_receive_only_their_own_webhooks(
        fake_meta, settings, django_capture_on_commit_callbacks):
    settings.INSTAGRAM_SEND_BACKEND = "graph"
    brand_a, brand_b = WorkspaceFactory(), WorkspaceFactory()
    client_a, _ = _owner_client(brand_a)
    client_b, _ = _owner_client(brand_b)
    assert connect(client_a, brand_a.pk, username="brand.a").status_code == 200
    assert connect(client_b, brand_b.pk, username="brand.b").status_code == 200
    account_a, account_b = account_id_for("brand.a"), account_id_for("brand.b")

    # Receiving: each delivery goes to the workspace that connected the account it names.
    webhook = Client()
    with django_capture_on_commit_callbacks(execute=True):
        assert deliver_webhook(webhook, dm_payload(account_a, "5550001", "mid.a.1", "hello A")).status_code == 200
        assert deliver_webhook(webhook, dm_payload(account_b, "5550002", "mid.b.1", "hello B")).status_code == 200
        # An account no workspace holds: acknowledged, kept, counted; nothing captured.
        before = instagram.unrouted_events_total()
        assert deliver_webhook(webhook, dm_payload("17841499999999999", "5550003", "mid.x")).status_code == 200
    assert set(Contact.objects.values_list("workspace_id", "igsid")) == {(brand_a.pk, "5550001"),
                                                                         (brand_b.pk, "5550002")}
    assert instagram.unrouted_events_total() == before + 1
    assert "No workspace for Instagram account 17841499999999999" in WebhookDelivery.objects.latest("id").note

    # Sending: each workspace's message goes out from its own account with its own token.
    for workspace in (brand_a, brand_b):
        contact = Contact.objects.get(workspace=workspace)
        assert send_message(workspace=workspace, contact=contact, text=f"Thanks {workspace.pk}",
                            origin="automated").status == "sent"
    assert [(m["account_id"], m["recipient"]["id"]) for m in fake_meta.sent] == [
        (account_a, "5550001"), (account_b, "5550002")]

    # The stand-in refuses a token used for another account, as Meta does.
    token_a = token_decrypt(InstagramConnection.objects.get(workspace=brand_a).token_encrypted)
    with pytest.raises(DeliveryError, match="another Instagram account"):
        GraphClient().send(account_id=account_b, access_token=token_a, recipient={"id": "5550002"}, text="x")
    assert fake_meta.refused == [{"account_id": account_b, "token_account": account_a}]
    assert len(fake_meta.sent) == 2


def test_a_contact_of_another_workspace_is_never_messaged_from_this_one(fake_meta, settings):
    settings.INSTAGRAM_SEND_BACKEND = "graph"
    workspace = WorkspaceFactory()
    client, _ = _owner_client(workspace)
    connect(client, workspace.pk, username="own.brand")
    stranger = ContactFactory()

    with pytest.raises(ValueError, match="another workspace"):
        send_message(workspace=workspace, contact=stranger, text="hi", origin="automated")
    assert fake_meta.sent == []


def test_a_deleted_workspace_gives_its_account_up(fake_meta):
    gone, new = WorkspaceFactory(), WorkspaceFactory()
    client_gone, _ = _owner_client(gone)
    connect(client_gone, gone.pk, username="moved.brand")
    Workspace.objects.filter(pk=gone.pk).update(deleted_at=timezone.now())
    client_new, _ = _owner_client(new)

    assert connect(client_new, new.pk, username="moved.brand").status_code == 200
    assert InstagramConnection.objects.get().workspace_id == new.pk
    assert Workspace.objects.get(pk=gone.pk).instagram_account_id == ""
