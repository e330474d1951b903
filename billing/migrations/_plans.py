"""The default plans (docs/product.md rule 7), shared by the data migration and the test suite."""

from django.conf import settings


def create_plans(apps, schema_editor) -> None:
    Plan = apps.get_model("billing", "Plan")
    Plan.objects.update_or_create(
        code="free",
        defaults={"name": "Free", "monthly_activations": 100, "price_cents": 0, "sort_order": 0},
    )
    Plan.objects.update_or_create(
        code="pro",
        defaults={
            "name": "Pro",
            "monthly_activations": 1000,
            "price_cents": 4900,
            "addon_pack_size": 1000,
            "addon_pack_price_cents": 2900,
            "stripe_price_id": settings.STRIPE_PRICE_PRO,
            "stripe_addon_price_id": settings.STRIPE_PRICE_ADDON_PACK,
            "sort_order": 1,
        },
    )
