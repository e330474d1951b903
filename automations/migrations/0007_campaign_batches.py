"""Campaign audiences frozen as batches of contact ids (CampaignBatch) instead of one pending
CampaignRecipient row per contact: the fan-out then writes each recipient row once, final.

Nothing is converted here: a worker of the previous release may still be sending a campaign from its
pending rows while this runs, and must find them. The new fan-out turns a campaign's pending rows into
batches when it takes the campaign up (`_adopt_pending_rows`), under the campaign's lease. Reversed,
the batches not done become pending rows again, for the previous release's fan-out.
"""

import django.db.models.deletion
from django.db import migrations, models


def batches_to_pending_rows(apps, schema_editor):
    Recipient = apps.get_model("automations", "CampaignRecipient")
    Batch = apps.get_model("automations", "CampaignBatch")
    Contact = apps.get_model("contacts", "Contact")
    for batch in Batch.objects.filter(done_at__isnull=True).iterator():
        reached = set(Recipient.objects.filter(campaign_id=batch.campaign_id, contact_id__in=batch.contact_ids)
                      .values_list("contact_id", flat=True))
        existing = set(Contact.objects.filter(pk__in=batch.contact_ids).values_list("pk", flat=True))
        Recipient.objects.bulk_create(
            Recipient(campaign_id=batch.campaign_id, contact_id=contact_id, rank=batch.first_rank + position,
                      status="pending")
            for position, contact_id in enumerate(batch.contact_ids)
            if contact_id in existing and contact_id not in reached
        )


class Migration(migrations.Migration):
    dependencies = [
        ("automations", "0006_drop_redundant_fk_indexes"),
    ]

    operations = [
        migrations.CreateModel(
            name="CampaignBatch",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("number", models.PositiveIntegerField(help_text="Position of the batch in the campaign, from 0.")),
                ("first_rank", models.PositiveIntegerField(
                    help_text="Engaged-first rank of the batch's first contact.")),
                ("contact_ids", models.JSONField(help_text="Contact ids in engaged-first order.")),
                ("done_at", models.DateTimeField(blank=True, null=True)),
                ("campaign", models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE,
                                               related_name="batches", to="automations.campaign")),
            ],
            options={
                "ordering": ["campaign", "number"],
                "constraints": [models.UniqueConstraint(fields=("campaign", "number"),
                                                        name="automations_campaign_batch_once")],
            },
        ),
        migrations.RunPython(migrations.RunPython.noop, batches_to_pending_rows),
    ]
