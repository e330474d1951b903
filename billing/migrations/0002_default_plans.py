"""Free (100 activations a month) and Pro (1,000 a month base, packs of 1,000): docs/product.md rule 7."""

from django.db import migrations

from billing.migrations._plans import create_plans


class Migration(migrations.Migration):
    dependencies = [("billing", "0001_initial")]

    operations = [migrations.RunPython(create_plans, migrations.RunPython.noop)]
