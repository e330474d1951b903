"""Per-day and per-kind counters beside each month's usage row, for the usage page.

Existing rows get None ("not known"): the selectors rebuild them from the ledger on first read, under
the row's lock. New rows start empty and move with the gate. Two ledger indexes go, one write fewer
each on every activation: workspace_id (the unique (workspace, contact, month) serves every lookup by
workspace) and (workspace, month, kind) (the per-kind split now comes from the counters).
"""

import django.db.models.deletion
from django.db import migrations, models


def analyse_ledger_often(apps, schema_editor):
    # The planner finds one contact's record through the unique index only while it knows how many
    # records the workspace has this month. Rated at "about one" (a workspace that grew since the
    # last ANALYZE, on a table too big for the default 10% trigger), the (workspace, month, ...)
    # index ties with it and an already-active check may walk the whole month. Analysing every 50k
    # new records (ANALYZE samples, so it stays cheap) keeps big customers in the statistics.
    schema_editor.execute(
        "ALTER TABLE billing_activationrecord SET (autovacuum_analyze_scale_factor = 0,"
        " autovacuum_analyze_threshold = 50000)"
    )


def analyse_ledger_default(apps, schema_editor):
    schema_editor.execute(
        "ALTER TABLE billing_activationrecord RESET (autovacuum_analyze_scale_factor,"
        " autovacuum_analyze_threshold)"
    )


class Migration(migrations.Migration):

    dependencies = [
        ('accounts', '0004_api_token_password_fingerprint'),
        ('billing', '0007_staff_groups'),
    ]

    operations = [
        migrations.AddField(
            model_name='monthlyusage',
            name='activated_by_day',
            field=models.JSONField(blank=True, default=None, null=True),
        ),
        migrations.AddField(
            model_name='monthlyusage',
            name='activated_by_kind',
            field=models.JSONField(blank=True, default=None, null=True),
        ),
        migrations.AlterField(
            model_name='monthlyusage',
            name='activated_by_day',
            field=models.JSONField(blank=True, default=dict, null=True),
        ),
        migrations.AlterField(
            model_name='monthlyusage',
            name='activated_by_kind',
            field=models.JSONField(blank=True, default=dict, null=True),
        ),
        migrations.RemoveIndex(
            model_name='activationrecord',
            name='activation_ws_month_kind',
        ),
        migrations.AlterField(
            model_name='activationrecord',
            name='workspace',
            field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.PROTECT, related_name='activations', to='accounts.workspace'),
        ),
        migrations.RunPython(analyse_ledger_often, analyse_ledger_default),
    ]
