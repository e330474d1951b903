"""Put back the SQLite triggers of the per-workspace contact counter (0006), and recount.

On SQLite, 0008 added the unique (workspace, id) through Django's schema editor, which rebuilds the
contacts table (SQLite cannot add a constraint in place) and drops its triggers with the old table:
from then on the counter stopped following new and deleted contacts, and the usage page's database
total stood still. PostgreSQL added the constraint in place; nothing to do there.
"""

from django.db import migrations

SQLITE_TRIGGERS = [
    """CREATE TRIGGER IF NOT EXISTS contacts_count_insert AFTER INSERT ON contacts_contact BEGIN
        INSERT INTO contacts_contactcount (workspace_id, contacts) VALUES (NEW.workspace_id, 1)
        ON CONFLICT (workspace_id) DO UPDATE SET contacts = contacts + 1;
    END""",
    """CREATE TRIGGER IF NOT EXISTS contacts_count_delete AFTER DELETE ON contacts_contact BEGIN
        UPDATE contacts_contactcount SET contacts = contacts - 1 WHERE workspace_id = OLD.workspace_id;
    END""",
]
RECOUNT = [
    "DELETE FROM contacts_contactcount",
    "INSERT INTO contacts_contactcount (workspace_id, contacts)"
    " SELECT workspace_id, count(*) FROM contacts_contact GROUP BY workspace_id",
]


def restore_triggers(apps, schema_editor):
    if schema_editor.connection.vendor != "sqlite":
        return
    for statement in SQLITE_TRIGGERS + RECOUNT:  # one transaction: no contact slips between them
        schema_editor.execute(statement)


class Migration(migrations.Migration):
    dependencies = [
        ("contacts", "0008_contact_in_workspace"),
    ]

    operations = [
        migrations.RunPython(restore_triggers, migrations.RunPython.noop, elidable=False),
    ]
