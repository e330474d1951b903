"""Register the settling of activation reservations left in flight in celery-beat's schedule (rule 13).

Every minute; the job is idempotent and only touches reservations older than ACTIVATION_SETTLE_SECONDS.
"""

from django.db import migrations

NAME = "billing: settle activation reservations left in flight"
TASK = "billing.tasks.activations_settle"


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
        ("billing", "0010_activation_reservations"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(register, unregister)]
