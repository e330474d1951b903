"""Register the hourly safety net that returns ended subscriptions to Free (rule 9) in celery-beat."""

from django.db import migrations


def register(apps, schema_editor):
    CrontabSchedule = apps.get_model("django_celery_beat", "CrontabSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    hourly, _ = CrontabSchedule.objects.get_or_create(
        minute="41", hour="*", day_of_month="*", month_of_year="*", day_of_week="*", timezone="UTC"
    )
    PeriodicTask.objects.update_or_create(
        name="billing: end subscriptions whose paid period is over",
        defaults={"task": "billing.tasks.lapse_subscriptions", "crontab": hourly, "enabled": True},
    )


def unregister(apps, schema_editor):
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    PeriodicTask.objects.filter(task="billing.tasks.lapse_subscriptions").delete()


class Migration(migrations.Migration):
    dependencies = [
        ("billing", "0004_stripe_billing"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(register, unregister)]
