"""The inbox: each contact's last activity (newest message in or out) kept by a trigger on the message
table, the keyset index the conversations list pages on, per-member read marks, and the message tag.

A trigger rather than application code, like the contact counter (0006): messages are written by
intake, single sends, bulk sends in raw SQL, seeding and tests alike, and the database sees them all.
PostgreSQL works per statement (a transition table: one UPDATE per INSERT statement, whatever its size,
taking the contact rows' locks in id order so two bulk sends never deadlock on them); SQLite per row.
A message skipped because the window was closed was never sent: it moves nothing.
"""

import django.db.models.deletion
import django.utils.timezone
from django.db import migrations, models

SKIPPED = "skipped_window"
POSTGRES_UP = f"""
CREATE FUNCTION contacts_message_activity() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE contacts_contact AS c SET last_activity_at = x.created_at, last_message_id = x.message_id
    FROM (
        SELECT k.id, l.created_at, l.message_id
        FROM (SELECT DISTINCT ON (contact_id) contact_id, created_at, id AS message_id FROM inserted
              WHERE status <> '{SKIPPED}' ORDER BY contact_id, created_at DESC, id DESC) AS l
        JOIN contacts_contact AS k ON k.id = l.contact_id
        ORDER BY k.id FOR NO KEY UPDATE OF k
    ) AS x
    WHERE c.id = x.id AND (c.last_activity_at IS NULL
        OR (c.last_activity_at, coalesce(c.last_message_id, 0)) < (x.created_at, x.message_id));
    RETURN NULL;
END $$;
CREATE TRIGGER contacts_message_activity AFTER INSERT ON contacts_message
    REFERENCING NEW TABLE AS inserted FOR EACH STATEMENT EXECUTE FUNCTION contacts_message_activity();
"""
POSTGRES_DOWN = """
DROP TRIGGER IF EXISTS contacts_message_activity ON contacts_message;
DROP FUNCTION IF EXISTS contacts_message_activity();
"""
SQLITE_UP = f"""
CREATE TRIGGER contacts_message_activity AFTER INSERT ON contacts_message WHEN NEW.status <> '{SKIPPED}' BEGIN
    UPDATE contacts_contact SET last_activity_at = NEW.created_at, last_message_id = NEW.id
    WHERE id = NEW.contact_id AND (last_activity_at IS NULL OR last_activity_at < NEW.created_at
        OR (last_activity_at = NEW.created_at AND coalesce(last_message_id, 0) < NEW.id));
END
"""
SQLITE_DOWN = "DROP TRIGGER IF EXISTS contacts_message_activity"
BACKFILL = f"""
UPDATE contacts_contact SET last_activity_at = m.created_at, last_message_id = m.id
FROM (SELECT DISTINCT ON (contact_id) contact_id, created_at, id FROM contacts_message
      WHERE status <> '{SKIPPED}' ORDER BY contact_id, created_at DESC, id DESC) AS m
WHERE contacts_contact.id = m.contact_id
"""
SQLITE_BACKFILL = f"""
UPDATE contacts_contact SET
    last_activity_at = (SELECT m.created_at FROM contacts_message m WHERE m.contact_id = contacts_contact.id
                        AND m.status <> '{SKIPPED}' ORDER BY m.created_at DESC, m.id DESC LIMIT 1),
    last_message_id = (SELECT m.id FROM contacts_message m WHERE m.contact_id = contacts_contact.id
                       AND m.status <> '{SKIPPED}' ORDER BY m.created_at DESC, m.id DESC LIMIT 1)
"""


def activity_up(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        schema_editor.execute("LOCK TABLE contacts_message IN SHARE MODE")  # no insert between backfill and trigger
        schema_editor.execute(POSTGRES_UP)
        schema_editor.execute(BACKFILL)
    elif vendor == "sqlite":
        schema_editor.execute(SQLITE_UP)
        schema_editor.execute(SQLITE_BACKFILL)
    else:  # pragma: no cover - only PostgreSQL and SQLite are supported
        raise RuntimeError(f"the message activity trigger is not written for {vendor}")


def activity_down(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        schema_editor.execute(POSTGRES_DOWN)
    elif vendor == "sqlite":
        schema_editor.execute(SQLITE_DOWN)


class Migration(migrations.Migration):

    dependencies = [
        ('accounts', '0004_api_token_password_fingerprint'),
        ('contacts', '0010_instagram_connections'),
    ]

    operations = [
        migrations.CreateModel(
            name='ConversationRead',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('last_read_at', models.DateTimeField()),
                ('last_read_message_id', models.BigIntegerField()),
                ('updated_at', models.DateTimeField(default=django.utils.timezone.now)),
            ],
        ),
        migrations.AddField(
            model_name='contact',
            name='last_activity_at',
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name='contact',
            name='last_message',
            field=models.ForeignKey(blank=True, db_constraint=False, db_index=False, null=True, on_delete=django.db.models.deletion.DO_NOTHING, related_name='+', to='contacts.message'),
        ),
        migrations.AddIndex(
            model_name='message',
            index=models.Index(condition=models.Q(('direction', 'in')), fields=['contact', 'id'], name='message_contact_inbound'),
        ),
        migrations.AddField(
            model_name='message',
            name='tag',
            field=models.CharField(blank=True, db_default='', default='', max_length=16),
        ),
        migrations.AddIndex(
            model_name='contact',
            index=models.Index(condition=models.Q(('last_activity_at__isnull', False)), fields=['workspace', '-last_activity_at', '-id'], name='contact_ws_activity'),
        ),
        migrations.AddField(
            model_name='conversationread',
            name='contact',
            field=models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='+', to='contacts.contact'),
        ),
        migrations.AddField(
            model_name='conversationread',
            name='membership',
            field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='+', to='accounts.membership'),
        ),
        migrations.AddConstraint(
            model_name='conversationread',
            constraint=models.UniqueConstraint(fields=('membership', 'contact'), name='contacts_conversation_read_once'),
        ),
        migrations.RunPython(activity_up, activity_down),
    ]
