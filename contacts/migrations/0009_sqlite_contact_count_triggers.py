"""Nothing to do: this step repaired the contact counter's triggers on a database engine the project
no longer runs on (0008 had dropped them there). On PostgreSQL 0008 kept them, so the step has always
been empty here; it stays so that the migration history of existing databases is unchanged.
"""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("contacts", "0008_contact_in_workspace"),
    ]

    operations = []
