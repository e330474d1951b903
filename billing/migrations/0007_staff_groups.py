"""The two staff roles of the admin, as groups.

support: reads everything, grants bonus activations, resumes or cancels paused actions.
billing: reads everything, edits plans, replays Stripe events.
Neither can edit the ledgers: the admin refuses that to everyone.
"""

from django.contrib.auth.management import create_permissions
from django.db import migrations

APPS = ["accounts", "contacts", "billing", "automations"]
SUPPORT_EXTRA = [("billing", "add_bonusgrant"), ("automations", "change_pausedaction")]
BILLING_EXTRA = [("billing", "change_plan"), ("billing", "replay_stripeevent")]


def create_groups(apps, schema_editor):
    # Permissions are normally created after migrate; make sure they exist now.
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    view = list(Permission.objects.filter(content_type__app_label__in=APPS, codename__startswith="view_"))

    def extra(pairs):
        return [Permission.objects.get(content_type__app_label=app, codename=codename) for app, codename in pairs]

    support, _ = Group.objects.get_or_create(name="support")
    support.permissions.set(view + extra(SUPPORT_EXTRA))
    billing, _ = Group.objects.get_or_create(name="billing")
    billing.permissions.set(view + extra(BILLING_EXTRA))


def remove_groups(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name__in=["support", "billing"]).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("billing", "0006_stripe_event_replay_permission"),
        ("automations", "0002_periodic_tasks"),
        ("contacts", "0005_privacy"),
        ("accounts", "0002_api_tokens_idempotency"),
        ("auth", "0012_alter_user_first_name_max_length"),
    ]

    operations = [migrations.RunPython(create_groups, remove_groups)]
