"""One composite foreign key per message instead of two: (workspace_id, contact_id) references the
contact's (workspace_id, id).

The pair was checked by two keys, one on each column, each a locking lookup at commit; a campaign
writes thousands of messages a second, and those checks were a large part of its database time. The
composite key is one lookup and checks more: the message's contact is a contact of the message's
workspace. It needs a unique (workspace_id, id) on contacts, which also replaces the single-column
workspace index (every other contact index starts with workspace_id too).

PostgreSQL only: SQLite (the embedded demo default) cannot add a constraint to an existing table, so
there the two columns are not checked by the database; the ORM's on_delete rules apply on both.
The key is added NOT VALID and then validated, which does not block writes to the table meanwhile.
"""

import django.db.models.deletion
from django.db import migrations, models

MESSAGE_FK = "message_contact_in_workspace"
CONTACT_WORKSPACE_INDEX = "contacts_contact_workspace_id_c425fb7f"


def add_composite_key(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(
        f"ALTER TABLE contacts_message ADD CONSTRAINT {MESSAGE_FK} FOREIGN KEY (workspace_id, contact_id)"
        " REFERENCES contacts_contact (workspace_id, id) DEFERRABLE INITIALLY DEFERRED NOT VALID"
    )
    schema_editor.execute(f"ALTER TABLE contacts_message VALIDATE CONSTRAINT {MESSAGE_FK}")


def drop_composite_key(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"ALTER TABLE contacts_message DROP CONSTRAINT IF EXISTS {MESSAGE_FK}")


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0004_api_token_password_fingerprint"),
        ("contacts", "0007_drop_redundant_fk_indexes"),
    ]

    operations = [
        migrations.AddConstraint(
            model_name="contact",
            constraint=models.UniqueConstraint(fields=("workspace", "id"), name="contact_in_workspace"),
        ),
        # Only the index goes (as in 0007): Django's AlterField would also drop and re-add the foreign
        # key constraint, validating the whole contact table under lock.
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="contact",
                    name="workspace",
                    field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE,
                                            related_name="contacts", to="accounts.workspace"),
                ),
            ],
            database_operations=[
                migrations.RunSQL(
                    f"DROP INDEX IF EXISTS {CONTACT_WORKSPACE_INDEX}",
                    reverse_sql=f"CREATE INDEX IF NOT EXISTS {CONTACT_WORKSPACE_INDEX} ON contacts_contact (workspace_id)",
                ),
            ],
        ),
        migrations.AlterField(
            model_name="message",
            name="contact",
            field=models.ForeignKey(db_constraint=False, db_index=False, on_delete=django.db.models.deletion.CASCADE,
                                    related_name="messages", to="contacts.contact"),
        ),
        migrations.AlterField(
            model_name="message",
            name="workspace",
            field=models.ForeignKey(db_constraint=False, on_delete=django.db.models.deletion.CASCADE,
                                    related_name="messages", to="accounts.workspace"),
        ),
        migrations.RunPython(add_composite_key, drop_composite_key, elidable=False),
    ]
