"""One composite foreign key per activation record instead of two: (workspace_id, contact_id)
references the contact's (workspace_id, id) (contacts 0008).

Half the checks on the ledger's hottest insert (two locking lookups per row at commit were about
half of the time a 100k-contact `activate_many` spends in PostgreSQL), and a stronger rule: a
record's contact is a contact of the record's workspace, which until now only the gate's code
ensured. A record whose contact was erased (contact_id set to NULL by a privacy request) is not checked, as
with the single-column key; the workspace cannot be deleted under it (on_delete=PROTECT).

Like contacts 0008, not atomic: the new key is added NOT VALID and
validated in a second statement (which does not block writes to the ledger), and the old keys go last.
"""

import django.db.models.deletion
from django.db import migrations, models

RECORD_FK = "activation_contact_in_workspace"


def add_composite_key(apps, schema_editor):
    schema_editor.execute(f"ALTER TABLE billing_activationrecord DROP CONSTRAINT IF EXISTS {RECORD_FK}")
    schema_editor.execute(
        f"ALTER TABLE billing_activationrecord ADD CONSTRAINT {RECORD_FK} FOREIGN KEY (workspace_id, contact_id)"
        " REFERENCES contacts_contact (workspace_id, id) DEFERRABLE INITIALLY DEFERRED NOT VALID"
    )
    schema_editor.execute(f"ALTER TABLE billing_activationrecord VALIDATE CONSTRAINT {RECORD_FK}")


def drop_composite_key(apps, schema_editor):
    schema_editor.execute(f"ALTER TABLE billing_activationrecord DROP CONSTRAINT IF EXISTS {RECORD_FK}")


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("accounts", "0004_api_token_password_fingerprint"),
        ("billing", "0008_usage_breakdown"),
        ("contacts", "0008_contact_in_workspace"),
    ]

    operations = [
        migrations.RunPython(add_composite_key, drop_composite_key, elidable=False),
        migrations.AlterField(
            model_name="activationrecord",
            name="contact",
            field=models.ForeignKey(db_constraint=False, null=True, on_delete=django.db.models.deletion.SET_NULL,
                                    related_name="activations", to="contacts.contact"),
        ),
        migrations.AlterField(
            model_name="activationrecord",
            name="workspace",
            field=models.ForeignKey(db_constraint=False, db_index=False, on_delete=django.db.models.deletion.PROTECT,
                                    related_name="activations", to="accounts.workspace"),
        ),
    ]
