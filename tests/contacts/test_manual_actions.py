"""Manual actions (rule 6) work at any quota state and never create an activation."""

import pytest

from billing.activation import activate_many, usage
from billing.models import ActivationRecord
from contacts import services
from inro.errors import ApplicationError
from tests.factories import ContactFactory, FolderFactory, WorkspaceFactory

pytestmark = pytest.mark.django_db


def test_folder_add_and_tag_edit_at_the_limit_create_no_activation(workspace, owner, make_contacts):
    activate_many(workspace, make_contacts(workspace, 100), kind="campaign")
    assert usage(workspace).limit_reached
    newcomer = ContactFactory(workspace=workspace)
    folder = FolderFactory(workspace=workspace)

    assert services.folder_add_contacts(folder=folder, contact_ids=[newcomer.pk], added_by=owner) == 1
    assert services.contact_set_tags(contact=newcomer, names=["VIP", " vip ", "wholesale"]) == ["vip", "wholesale"]

    assert list(folder.contacts.all()) == [newcomer]
    assert not ActivationRecord.objects.filter(contact=newcomer).exists()
    assert usage(workspace).activated == 100


def test_folder_add_refuses_contacts_of_another_workspace(workspace, owner):
    folder = FolderFactory(workspace=workspace)
    stranger = ContactFactory(workspace=WorkspaceFactory())

    with pytest.raises(ApplicationError) as error:
        services.folder_add_contacts(folder=folder, contact_ids=[stranger.pk], added_by=owner)

    assert error.value.status == 404
    assert folder.contacts.count() == 0


def test_duplicate_folder_name_is_a_conflict(workspace):
    services.folder_create(workspace=workspace, name="VIP")
    with pytest.raises(ApplicationError) as error:
        services.folder_create(workspace=workspace, name="VIP")
    assert error.value.status == 409
