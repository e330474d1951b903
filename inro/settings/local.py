"""Local development: `make run` on the embedded defaults."""

from inro.settings.base import *  # noqa: F403
from inro.settings.base import derived_fernet_key, env

DEBUG = env.bool("DEBUG", default=True)
SECRET_KEY = env("SECRET_KEY", default="local-dev-only-not-a-secret")  # noqa: S105

# Offline Stripe for `make run`: with no STRIPE_API_BASE set, billing serves a small fake of
# Stripe's API and hosted pages at /_fake_stripe/, so an upgrade works end to end without internet.
# Local settings only; production never sets FAKE_STRIPE_ENABLED. FAKE_STRIPE=false turns it off.
FAKE_STRIPE_ENABLED = DEBUG and not env("STRIPE_API_BASE", default="") and env.bool("FAKE_STRIPE", default=True)
if FAKE_STRIPE_ENABLED:
    STRIPE_API_BASE = env("SITE_URL", default="http://127.0.0.1:8000").rstrip("/") + "/_fake_stripe"

# Instagram tokens are encrypted at rest (contacts/tokens.py). Locally the key is derived from the
# SECRET_KEY, so the web server, worker and beat of `make run` share it across restarts.
INSTAGRAM_TOKEN_KEYS = env.list("INSTAGRAM_TOKEN_KEYS", default=[]) or [derived_fernet_key(SECRET_KEY, "instagram")]

# Offline Meta for `make run`: with no META_GRAPH_API_BASE set, contacts serves a stand-in for the
# Instagram consent page, the code exchange and the Graph endpoints we call at /_fake_meta/, so
# connecting a workspace works end to end without internet. FAKE_META=false turns it off; production
# never sets FAKE_META_ENABLED.
FAKE_META_ENABLED = DEBUG and not env("META_GRAPH_API_BASE", default="") and env.bool("FAKE_META", default=True)
if FAKE_META_ENABLED:
    _fake_meta = env("SITE_URL", default="http://127.0.0.1:8000").rstrip("/") + "/_fake_meta"
    META_GRAPH_API_BASE = _fake_meta + "/graph/v21.0"
    INSTAGRAM_AUTHORIZE_URL = _fake_meta + "/oauth/authorize"
    INSTAGRAM_TOKEN_URL = _fake_meta + "/api/oauth/access_token"
