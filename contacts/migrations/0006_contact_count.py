"""A per-workspace contact counter kept by triggers on contacts_contact, read by the usage page.

Triggers rather than application code: contacts arrive through intake, imports, bulk seeding and raw
SQL alike, and leave through erasure and cascades; the database sees them all. They count per
statement (transition tables: one upsert per INSERT statement, whatever its size).
Deletes only decrement an existing row, so a cascade that removes the counter first is harmless.
Contacts never change workspace, so UPDATEs are not watched (that would tax every inbound message).
"""

import django.db.models.deletion
from django.db import migrations, models

POSTGRES_UP = """
CREATE FUNCTION contacts_count_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO contacts_contactcount AS c (workspace_id, contacts)
    SELECT workspace_id, count(*) FROM inserted GROUP BY workspace_id ORDER BY workspace_id
    ON CONFLICT (workspace_id) DO UPDATE SET contacts = c.contacts + EXCLUDED.contacts;
    RETURN NULL;
END $$;
CREATE FUNCTION contacts_count_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE contacts_contactcount AS c SET contacts = c.contacts - d.n
    FROM (SELECT workspace_id, count(*) AS n FROM deleted GROUP BY workspace_id) AS d
    WHERE c.workspace_id = d.workspace_id;
    RETURN NULL;
END $$;
CREATE TRIGGER contacts_count_insert AFTER INSERT ON contacts_contact
    REFERENCING NEW TABLE AS inserted FOR EACH STATEMENT EXECUTE FUNCTION contacts_count_inserted();
CREATE TRIGGER contacts_count_delete AFTER DELETE ON contacts_contact
    REFERENCING OLD TABLE AS deleted FOR EACH STATEMENT EXECUTE FUNCTION contacts_count_deleted();
"""
POSTGRES_DOWN = """
DROP TRIGGER IF EXISTS contacts_count_insert ON contacts_contact;
DROP TRIGGER IF EXISTS contacts_count_delete ON contacts_contact;
DROP FUNCTION IF EXISTS contacts_count_inserted();
DROP FUNCTION IF EXISTS contacts_count_deleted();
"""
BACKFILL = """
INSERT INTO contacts_contactcount (workspace_id, contacts)
SELECT workspace_id, count(*) FROM contacts_contact GROUP BY workspace_id
"""


def triggers_up(apps, schema_editor):
    schema_editor.execute("LOCK TABLE contacts_contact IN SHARE MODE")  # no insert between count and trigger
    schema_editor.execute(POSTGRES_UP)
    schema_editor.execute(BACKFILL)


def triggers_down(apps, schema_editor):
    schema_editor.execute(POSTGRES_DOWN)


class Migration(migrations.Migration):

    dependencies = [
        ('accounts', '0004_api_token_password_fingerprint'),
        ('contacts', '0005_privacy'),
    ]

    operations = [
        migrations.CreateModel(
            name='ContactCount',
            fields=[
                ('workspace', models.OneToOneField(on_delete=django.db.models.deletion.CASCADE, primary_key=True, related_name='contact_count', serialize=False, to='accounts.workspace')),
                ('contacts', models.BigIntegerField(default=0)),
            ],
        ),
        migrations.RunPython(triggers_up, triggers_down),
    ]
