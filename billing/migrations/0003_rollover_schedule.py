"""Register the month rollover in celery-beat's database schedule (rule 11).

00:05 UTC on the 1st, plus an hourly run as a safety net: the job is idempotent, so a missed 1st is
caught up within the hour and a second run changes nothing.
"""

from django.db import migrations


def register(apps, schema_editor):
    CrontabSchedule = apps.get_model("django_celery_beat", "CrontabSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    monthly, _ = CrontabSchedule.objects.get_or_create(
        minute="5", hour="0", day_of_month="1", month_of_year="*", day_of_week="*", timezone="UTC"
    )
    hourly, _ = CrontabSchedule.objects.get_or_create(
        minute="17", hour="*", day_of_month="*", month_of_year="*", day_of_week="*", timezone="UTC"
    )
    PeriodicTask.objects.update_or_create(
        name="billing: roll over the month",
        defaults={"task": "billing.tasks.roll_over_month", "crontab": monthly, "enabled": True},
    )
    PeriodicTask.objects.update_or_create(
        name="billing: roll over the month (hourly catch-up)",
        defaults={"task": "billing.tasks.roll_over_month", "crontab": hourly, "enabled": True},
    )


def unregister(apps, schema_editor):
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    PeriodicTask.objects.filter(task="billing.tasks.roll_over_month").delete()


class Migration(migrations.Migration):
    dependencies = [
        ("billing", "0002_default_plans"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(register, unregister)]
