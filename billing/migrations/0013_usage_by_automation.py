"""Per-automation counters beside each month's usage row (the usage page's breakdown by automation).

Like the per-day and per-kind counters (0008): existing rows get None ("not known") and are counted
from the ledger on first read, under the row's lock; new rows start empty and move with the gate.
"""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('billing', '0012_floors_and_paid_periods'),
    ]

    operations = [
        migrations.AddField(
            model_name='monthlyusage',
            name='activated_by_ref',
            field=models.JSONField(blank=True, default=None, null=True),
        ),
        migrations.AlterField(
            model_name='monthlyusage',
            name='activated_by_ref',
            field=models.JSONField(blank=True, default=dict, null=True),
        ),
    ]
