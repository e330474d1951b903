"""Floors that bonuses add to, plan changes waiting for the end of the paid period, and the job that
applies them when Stripe's renewal event is late (docs/product.md rules 8, 12, "The paid period").

Rows of the current month (and later) held above their plan, packs and bonuses were held there by
what they had already activated: they get that floor recorded, so their quota reads the same and a
later bonus adds to it.
"""

import datetime

import django.db.models.deletion
from django.db import migrations, models
from django.db.models import Sum


def floors_record(apps, schema_editor):
    MonthlyUsage = apps.get_model("billing", "MonthlyUsage")
    BonusGrant = apps.get_model("billing", "BonusGrant")
    Subscription = apps.get_model("billing", "Subscription")
    Plan = apps.get_model("billing", "Plan")
    free = Plan.objects.filter(code="free").first()
    # From last month on (a billing zone ahead of UTC may already be in the next month): older rows are history.
    this_month = (datetime.datetime.now(tz=datetime.UTC).date().replace(day=1) - datetime.timedelta(days=1)).replace(day=1)
    for row in MonthlyUsage.objects.filter(month__gte=this_month).iterator(chunk_size=1000):
        subscription = Subscription.objects.filter(workspace_id=row.workspace_id).select_related("plan").first()
        if subscription is None:
            base = free.monthly_activations if free else 0
        else:
            base = subscription.plan.monthly_activations + subscription.addon_packs * subscription.plan.addon_pack_size
        bonus = BonusGrant.objects.filter(workspace_id=row.workspace_id, month=row.month).aggregate(
            total=Sum("amount"))["total"] or 0
        if row.quota - bonus > base and row.activated >= row.quota:
            MonthlyUsage.objects.filter(pk=row.pk).update(kept_at=row.quota, kept_at_bonus=bonus)


def register(apps, schema_editor):
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    every, _ = IntervalSchedule.objects.get_or_create(every=1, period="minutes")
    PeriodicTask.objects.update_or_create(
        name="billing: apply plan changes whose paid period is over",
        defaults={"task": "billing.tasks.apply_scheduled_plan_changes", "interval": every, "crontab": None,
                  "enabled": True},
    )


def unregister(apps, schema_editor):
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    PeriodicTask.objects.filter(task="billing.tasks.apply_scheduled_plan_changes").delete()


class Migration(migrations.Migration):

    dependencies = [
        ('billing', '0011_settle_schedule'),
        ('django_celery_beat', '0019_alter_periodictasks_options'),
    ]

    operations = [
        migrations.AddField(
            model_name='monthlyusage',
            name='kept_at',
            field=models.PositiveIntegerField(default=0),
        ),
        migrations.AddField(
            model_name='monthlyusage',
            name='kept_at_bonus',
            field=models.PositiveIntegerField(default=0),
        ),
        migrations.AddField(
            model_name='subscription',
            name='scheduled_addon_packs',
            field=models.PositiveIntegerField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name='subscription',
            name='scheduled_for',
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name='subscription',
            name='scheduled_plan',
            field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to='billing.plan'),
        ),
        migrations.RunPython(floors_record, migrations.RunPython.noop),
        migrations.RunPython(register, unregister),
    ]
