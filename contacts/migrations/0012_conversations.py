"""Each contact's last activity moves from two columns of the contact (0011) to a narrow table of its
own, contacts_conversation, with the inbox's keyset index.

Why: the activity trigger's UPDATE of a contact row is never HOT (the activity column is indexed), so
each message wrote a new entry in all eight indexes of the contact table; a bulk send of 10,000
messages took three times as long with the trigger as without (bench/NOTES.md). A conversation row
has two indexes. The trigger now upserts per statement (a transition table), its rows sorted by
contact, so two bulk sends take their row locks in one order; SQLite per row.
"""

import django.db.models.deletion
from django.db import migrations, models

SKIPPED = "skipped_window"
POSTGRES_UP = f"""
DROP TRIGGER IF EXISTS contacts_message_activity ON contacts_message;
DROP FUNCTION IF EXISTS contacts_message_activity();
CREATE FUNCTION contacts_message_activity() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO contacts_conversation AS v (contact_id, workspace_id, last_activity_at, last_message_id)
    SELECT DISTINCT ON (contact_id) contact_id, workspace_id, created_at, id FROM inserted
    WHERE status <> '{SKIPPED}' ORDER BY contact_id, created_at DESC, id DESC
    ON CONFLICT (contact_id) DO UPDATE
        SET last_activity_at = EXCLUDED.last_activity_at, last_message_id = EXCLUDED.last_message_id
        WHERE (v.last_activity_at, v.last_message_id) < (EXCLUDED.last_activity_at, EXCLUDED.last_message_id);
    RETURN NULL;
END $$;
CREATE TRIGGER contacts_message_activity AFTER INSERT ON contacts_message
    REFERENCING NEW TABLE AS inserted FOR EACH STATEMENT EXECUTE FUNCTION contacts_message_activity();
"""
POSTGRES_DOWN = """
DROP TRIGGER IF EXISTS contacts_message_activity ON contacts_message;
DROP FUNCTION IF EXISTS contacts_message_activity();
"""
SQLITE_UP = [
    "DROP TRIGGER IF EXISTS contacts_message_activity",
    f"""CREATE TRIGGER contacts_message_activity AFTER INSERT ON contacts_message
    WHEN NEW.status <> '{SKIPPED}' BEGIN
    INSERT INTO contacts_conversation (contact_id, workspace_id, last_activity_at, last_message_id)
    VALUES (NEW.contact_id, NEW.workspace_id, NEW.created_at, NEW.id)
    ON CONFLICT (contact_id) DO UPDATE SET last_activity_at = excluded.last_activity_at,
        last_message_id = excluded.last_message_id
    WHERE last_activity_at < excluded.last_activity_at
        OR (last_activity_at = excluded.last_activity_at AND last_message_id < excluded.last_message_id);
END""",
]
BACKFILL = """
INSERT INTO contacts_conversation (contact_id, workspace_id, last_activity_at, last_message_id)
SELECT id, workspace_id, last_activity_at, last_message_id FROM contacts_contact
WHERE last_activity_at IS NOT NULL AND last_message_id IS NOT NULL
"""


def conversations_up(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        schema_editor.execute("LOCK TABLE contacts_message IN SHARE MODE")  # no insert between backfill and trigger
        schema_editor.execute(POSTGRES_UP)
    elif vendor == "sqlite":
        for statement in SQLITE_UP:
            schema_editor.execute(statement)
    else:  # pragma: no cover - only PostgreSQL and SQLite are supported
        raise RuntimeError(f"the message activity trigger is not written for {vendor}")
    schema_editor.execute(BACKFILL)


def conversations_down(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        schema_editor.execute(POSTGRES_DOWN)
    elif vendor == "sqlite":
        schema_editor.execute("DROP TRIGGER IF EXISTS contacts_message_activity")


class Migration(migrations.Migration):

    dependencies = [
        ('accounts', '0004_api_token_password_fingerprint'),
        ('contacts', '0011_inbox'),
    ]

    operations = [
        migrations.CreateModel(
            name='Conversation',
            fields=[
                ('contact', models.OneToOneField(on_delete=django.db.models.deletion.CASCADE, primary_key=True, related_name='conversation', serialize=False, to='contacts.contact')),
                ('last_activity_at', models.DateTimeField()),
                ('last_message', models.ForeignKey(db_constraint=False, db_index=False, on_delete=django.db.models.deletion.DO_NOTHING, related_name='+', to='contacts.message')),
                ('workspace', models.ForeignKey(db_constraint=False, db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='+', to='accounts.workspace')),
            ],
        ),
        migrations.AddIndex(
            model_name='conversation',
            index=models.Index(fields=['workspace', '-last_activity_at', '-contact'], name='conversation_ws_activity'),
        ),
        # Down: the 0011 trigger is not restored; migrate back past 0011 to leave no trigger at all.
        migrations.RunPython(conversations_up, conversations_down),
        migrations.RemoveIndex(
            model_name='contact',
            name='contact_ws_activity',
        ),
        migrations.RemoveField(
            model_name='contact',
            name='last_activity_at',
        ),
        migrations.RemoveField(
            model_name='contact',
            name='last_message',
        ),
    ]
