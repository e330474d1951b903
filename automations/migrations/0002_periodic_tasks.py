"""Register automations' periodic jobs in celery-beat's database schedule.

Every minute: start scheduled campaigns that are due (idempotent: a conditional status update is
the claim). Every 15 minutes: resend usage-alert emails that failed (sent_at still empty).
"""

from django.db import migrations

TASKS = {
    "automations: launch due campaigns": ("automations.tasks.campaigns_launch_due", 1),
    "automations: retry usage alert emails": ("automations.tasks.usage_alerts_retry", 15),
}


def register(apps, schema_editor):
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    for name, (task, minutes) in TASKS.items():
        every, _ = IntervalSchedule.objects.get_or_create(every=minutes, period="minutes")
        PeriodicTask.objects.update_or_create(
            name=name, defaults={"task": task, "interval": every, "crontab": None, "enabled": True}
        )


def unregister(apps, schema_editor):
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    PeriodicTask.objects.filter(task__in=[task for task, _ in TASKS.values()]).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("automations", "0001_initial"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(register, unregister)]
