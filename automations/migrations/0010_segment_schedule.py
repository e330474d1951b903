"""Segmentation runs on a schedule: how often, when next, and what the last run did; the beat job."""

from django.db import migrations, models

NAME = "automations: start the segmentation runs that are due"
TASK = "automations.tasks.segments_run_due"


def register(apps, schema_editor):
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    every, _ = IntervalSchedule.objects.get_or_create(every=1, period="minutes")
    PeriodicTask.objects.update_or_create(
        name=NAME, defaults={"task": TASK, "interval": every, "crontab": None, "enabled": True}
    )


def unregister(apps, schema_editor):
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    PeriodicTask.objects.filter(task=TASK).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("automations", "0009_campaign_critical"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [
        migrations.AddField(
            model_name="segment", name="run_every",
            field=models.CharField(choices=[("never", "Only when run by hand"), ("hour", "Every hour"),
                                            ("day", "Every day"), ("week", "Every week")],
                                   default="never", max_length=5),
        ),
        migrations.AddField(model_name="segment", name="next_run_at",
                            field=models.DateTimeField(blank=True, null=True)),
        migrations.AddField(model_name="segment", name="last_run_at",
                            field=models.DateTimeField(blank=True, null=True)),
        migrations.AddField(model_name="segment", name="last_run_added",
                            field=models.PositiveIntegerField(default=0)),
        migrations.AddField(model_name="segment", name="last_run_limited",
                            field=models.PositiveIntegerField(default=0)),
        migrations.AddIndex(
            model_name="segment",
            index=models.Index(condition=models.Q(("next_run_at__isnull", False)), fields=["next_run_at"],
                               name="segment_run_due"),
        ),
        migrations.AddField(
            model_name="enrichmentjob", name="segment",
            field=models.ForeignKey(blank=True, null=True, on_delete=models.deletion.SET_NULL,
                                    related_name="enrichment_jobs", to="automations.segment"),
        ),
        migrations.RunPython(register, unregister),
    ]
