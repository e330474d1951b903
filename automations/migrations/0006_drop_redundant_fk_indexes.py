"""Drop the single-column index on CampaignRecipient.campaign: the unique (campaign, contact) starts
with the same column, so it serves the foreign key's lookups, and every recipient row written (twice
per recipient: frozen, then final) maintains one index fewer.

Only the index goes: Django's own AlterField would also drop and re-add the foreign key constraint,
which validates the whole table under lock.
"""

import django.db.models.deletion
from django.db import migrations, models

INDEX = "automations_campaignrecipient_campaign_id_c9ad03d0"


class Migration(migrations.Migration):
    dependencies = [
        ("automations", "0005_campaign_fanout_indexes"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="campaignrecipient",
                    name="campaign",
                    field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE,
                                            related_name="recipients", to="automations.campaign"),
                ),
            ],
            database_operations=[
                migrations.RunSQL(
                    f"DROP INDEX IF EXISTS {INDEX}",
                    reverse_sql=f"CREATE INDEX IF NOT EXISTS {INDEX} ON automations_campaignrecipient (campaign_id)",
                ),
            ],
        ),
    ]
