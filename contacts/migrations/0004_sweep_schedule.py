"""Register the sweeper of Instagram webhook deliveries in celery-beat's database schedule.

Every minute: a delivery stored and answered 200 while the broker was down is still pending; the
sweeper processes it. Processing is idempotent, so a delivery the worker handles at the same time
changes nothing twice.
"""

from django.db import migrations

TASK = "contacts.tasks.sweep_pending_deliveries"


def register(apps, schema_editor):
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    every_minute, _ = IntervalSchedule.objects.get_or_create(every=1, period="minutes")
    PeriodicTask.objects.update_or_create(
        name="contacts: process pending Instagram webhook deliveries",
        defaults={"task": TASK, "interval": every_minute, "enabled": True},
    )


def unregister(apps, schema_editor):
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    PeriodicTask.objects.filter(task=TASK).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("contacts", "0003_webhook_intake"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(register, unregister)]
