"""The contact count the usage and contacts pages show is kept by the database (contacts.ContactCount):
every way a contact arrives or leaves moves it, bulk and raw SQL included."""

import pytest
from django.db import connection

from billing.selectors import database_contact_count
from contacts.models import Contact, ContactCount
from contacts.services import contact_delete
from tests.factories import ContactFactory, WorkspaceFactory

pytestmark = pytest.mark.django_db


def test_count_follows_inserts_bulk_inserts_and_deletes_per_workspace(workspace):
    other = WorkspaceFactory()
    assert database_contact_count(workspace=workspace) == 0

    first = ContactFactory(workspace=workspace)
    ContactFactory.create_batch(2, workspace=other)
    Contact.objects.bulk_create([Contact(workspace=workspace, igsid=f"bulk-{i}", source="dm") for i in range(40)])
    assert (database_contact_count(workspace=workspace), database_contact_count(workspace=other)) == (41, 2)

    contact_delete(contact=first)
    Contact.objects.filter(workspace=workspace, igsid__startswith="bulk-1").delete()  # bulk-1, bulk-10..19
    assert database_contact_count(workspace=workspace) == 29
    assert database_contact_count(workspace=workspace) == Contact.objects.filter(workspace=workspace).count()


def test_count_sees_raw_sql_inserts_too(workspace):
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO contacts_contact (workspace_id, igsid, username, name, source, captured_at, email,"
            " phone, custom_fields, biography) VALUES (%s, 'raw-1', '', '', 'import', %s, '', '', '{}', ''),"
            " (%s, 'raw-2', '', '', 'import', %s, '', '', '{}', '')",
            [workspace.pk, "2026-11-01T00:00:00+00:00", workspace.pk, "2026-11-01T00:00:00+00:00"],
        )
    assert database_contact_count(workspace=workspace) == 2


def test_a_deleted_workspace_takes_its_count_with_it():
    doomed = WorkspaceFactory()
    doomed_id = doomed.pk
    ContactFactory.create_batch(3, workspace=doomed)

    doomed.delete()  # cascades to contacts and to the counter, in whichever order

    assert not Contact.objects.filter(workspace_id=doomed_id).exists()
    assert not ContactCount.objects.filter(workspace_id=doomed_id).exists()
