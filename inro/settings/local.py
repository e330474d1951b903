"""Local development: `make run` (the database chosen by inro/devdb.py, the filesystem broker in var/)."""

from inro.settings.base import *  # noqa: F403
from inro.settings.base import env

DEBUG = env.bool("DEBUG", default=True)
SECRET_KEY = env("SECRET_KEY", default="local-dev-only-not-a-secret")

# Offline Stripe for `make run`: with no STRIPE_API_BASE set, billing serves a small fake of
# Stripe's API and hosted pages at /_fake_stripe/, so an upgrade works end to end without internet.
# Local settings only; production never sets FAKE_STRIPE_ENABLED. FAKE_STRIPE=false turns it off.
FAKE_STRIPE_ENABLED = DEBUG and not env("STRIPE_API_BASE", default="") and env.bool("FAKE_STRIPE", default=True)
if FAKE_STRIPE_ENABLED:
    STRIPE_API_BASE = env("SITE_URL", default="http://127.0.0.1:8000").rstrip("/") + "/_fake_stripe"
