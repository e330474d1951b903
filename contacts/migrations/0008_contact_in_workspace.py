"""One composite foreign key per message instead of two: (workspace_id, contact_id) references the
contact's (workspace_id, id).

The pair was checked by two keys, one on each column, each a locking lookup at commit; a campaign
writes thousands of messages a second, and those checks were a large part of its database time. The
composite key is one lookup and checks more: the message's contact is a contact of the message's
workspace. It needs a unique (workspace_id, id) on contacts, which also replaces the single-column
workspace index (every other contact index starts with workspace_id too).

Not atomic, so that nothing holds a long lock on the two biggest tables: the unique index is built
CONCURRENTLY (contacts keep being written) and then attached as the constraint; the new key is added
NOT VALID and validated in a second statement (which does not block writes); the old keys go last,
so the pair is never unchecked. Every step can run again after a failure halfway.
"""

import django.db.models.deletion
from django.db import migrations, models

UNIQUE = "contact_in_workspace"
MESSAGE_FK = "message_contact_in_workspace"
CONTACT_WORKSPACE_INDEX = "contacts_contact_workspace_id_c425fb7f"


def add_unique(apps, schema_editor):
    # A concurrent build that failed leaves an invalid index of that name behind: build it again.
    schema_editor.execute(
        "DO $$ BEGIN IF EXISTS (SELECT 1 FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid"
        f" WHERE c.relname = '{UNIQUE}' AND NOT i.indisvalid) THEN DROP INDEX {UNIQUE}; END IF; END $$"
    )
    schema_editor.execute(f"CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS {UNIQUE} ON contacts_contact (workspace_id, id)")
    schema_editor.execute(
        f"DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conname = '{UNIQUE}') THEN"
        f" ALTER TABLE contacts_contact ADD CONSTRAINT {UNIQUE} UNIQUE USING INDEX {UNIQUE}; END IF; END $$"
    )


def drop_unique(apps, schema_editor):
    contact = apps.get_model("contacts", "Contact")
    schema_editor.remove_constraint(contact, models.UniqueConstraint(fields=("workspace", "id"), name=UNIQUE))


def add_composite_key(apps, schema_editor):
    schema_editor.execute(f"ALTER TABLE contacts_message DROP CONSTRAINT IF EXISTS {MESSAGE_FK}")
    schema_editor.execute(
        f"ALTER TABLE contacts_message ADD CONSTRAINT {MESSAGE_FK} FOREIGN KEY (workspace_id, contact_id)"
        " REFERENCES contacts_contact (workspace_id, id) DEFERRABLE INITIALLY DEFERRED NOT VALID"
    )
    schema_editor.execute(f"ALTER TABLE contacts_message VALIDATE CONSTRAINT {MESSAGE_FK}")


def drop_composite_key(apps, schema_editor):
    schema_editor.execute(f"ALTER TABLE contacts_message DROP CONSTRAINT IF EXISTS {MESSAGE_FK}")


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("accounts", "0004_api_token_password_fingerprint"),
        ("contacts", "0007_drop_redundant_fk_indexes"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AddConstraint(
                    model_name="contact",
                    constraint=models.UniqueConstraint(fields=("workspace", "id"), name=UNIQUE),
                ),
            ],
            database_operations=[migrations.RunPython(add_unique, drop_unique, elidable=False)],
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
        migrations.RunPython(add_composite_key, drop_composite_key, elidable=False),
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
    ]
