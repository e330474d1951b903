"""Register the daily purge of expired API Idempotency-Keys in celery-beat's database schedule."""

from django.db import migrations

NAME = "accounts: purge expired idempotency keys"
TASK = "accounts.tasks.purge_idempotency_keys"


def register(apps, schema_editor):
    CrontabSchedule = apps.get_model("django_celery_beat", "CrontabSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    daily, _ = CrontabSchedule.objects.get_or_create(
        minute="41", hour="3", day_of_month="*", month_of_year="*", day_of_week="*", timezone="UTC"
    )
    PeriodicTask.objects.update_or_create(name=NAME, defaults={"task": TASK, "crontab": daily, "enabled": True})


def unregister(apps, schema_editor):
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    PeriodicTask.objects.filter(task=TASK).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0002_api_tokens_idempotency"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(register, unregister)]
