"""A scenario trigger: the next message of a contact placed in a segment (once per contact)."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("automations", "0010_segment_schedule")]

    operations = [
        migrations.AlterField(
            model_name="scenario", name="trigger_type",
            field=models.CharField(choices=[
                ("dm_keyword", "DM keyword"), ("comment", "Comment on a post"), ("story", "Story reply or mention"),
                ("ad_referral", "Ad referral"), ("new_contact", "New contact"), ("webhook", "Inbound webhook"),
                ("next_message", "Next message from a segment's contact")], max_length=16),
        ),
    ]
