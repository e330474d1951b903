"""Drop the single-column index on Message.contact: message_contact_created (contact, created_at)
starts with the same column, so it serves the foreign key's lookups, and every message written
(a campaign writes thousands a second) maintains one index fewer.

Only the index goes: Django's own AlterField would also drop and re-add the foreign key constraint,
which validates the whole table under lock.
"""

import django.db.models.deletion
from django.db import migrations, models

INDEX = "contacts_message_contact_id_911abfb2"


class Migration(migrations.Migration):
    dependencies = [
        ("contacts", "0006_contact_count"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="message",
                    name="contact",
                    field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE,
                                            related_name="messages", to="contacts.contact"),
                ),
            ],
            database_operations=[
                migrations.RunSQL(
                    f"DROP INDEX IF EXISTS {INDEX}",
                    reverse_sql=f"CREATE INDEX IF NOT EXISTS {INDEX} ON contacts_message (contact_id)",
                ),
            ],
        ),
    ]
