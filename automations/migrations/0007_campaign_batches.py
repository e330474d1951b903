"""Campaign audiences frozen as batches of contact ids (CampaignBatch) instead of one pending
CampaignRecipient row per contact: the fan-out then writes each recipient row once, final.

Campaigns frozen before this migration keep their finished rows; their pending rows become batches
(runs of consecutive ranks, so every contact keeps its rank) and are deleted, and the partial index
of pending rows goes with them. Reversed, the batches not done become pending rows again.
"""

import django.db.models.deletion
from django.db import migrations, models

BATCH_SIZE = 5000  # automations.services.campaigns.CAMPAIGN_BATCH_SIZE when this was written


def pending_rows_to_batches(apps, schema_editor):
    Recipient = apps.get_model("automations", "CampaignRecipient")
    Batch = apps.get_model("automations", "CampaignBatch")
    pending = Recipient.objects.filter(status="pending")
    for campaign_id in pending.order_by().values_list("campaign_id", flat=True).distinct():
        rows = pending.filter(campaign_id=campaign_id).order_by("rank", "id").values_list("rank", "contact_id")
        runs: list[tuple[int, list[int]]] = []
        for rank, contact_id in rows.iterator(chunk_size=BATCH_SIZE):
            first_rank, ids = runs[-1] if runs else (None, [])
            if first_rank is None or rank != first_rank + len(ids) or len(ids) >= BATCH_SIZE:
                runs.append((rank, [contact_id]))
            else:
                ids.append(contact_id)
        Batch.objects.bulk_create(
            Batch(campaign_id=campaign_id, number=number, first_rank=first_rank, contact_ids=ids)
            for number, (first_rank, ids) in enumerate(runs)
        )
    pending.delete()


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
        migrations.RunPython(pending_rows_to_batches, batches_to_pending_rows),
        # It served the fan-out's keyset over pending rows; empty from here on (no row is written pending).
        migrations.RemoveIndex(model_name="campaignrecipient", name="recipient_pending_rank"),
    ]
