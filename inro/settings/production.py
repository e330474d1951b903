"""Production: secrets must come from the environment; no defaults for them."""

from inro.settings.base import *  # noqa: F403
from inro.settings.base import env

DEBUG = False
SECRET_KEY = env("SECRET_KEY")
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS")
STRIPE_SECRET_KEY = env("STRIPE_SECRET_KEY")
STRIPE_WEBHOOK_SECRET = env("STRIPE_WEBHOOK_SECRET")
META_APP_SECRET = env("META_APP_SECRET")
META_VERIFY_TOKEN = env("META_VERIFY_TOKEN")
META_APP_ID = env("META_APP_ID")
# Required: the keys that encrypt every workspace's Instagram token (docs/deploy.md, key rotation).
INSTAGRAM_TOKEN_KEYS = env.list("INSTAGRAM_TOKEN_KEYS")

SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_HSTS_PRELOAD = True
SECURE_CONTENT_TYPE_NOSNIFF = True
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
X_FRAME_OPTIONS = "DENY"

# Operations: JSON logs, probes exempt from the HTTPS redirect.
LOG_FORMAT = env("LOG_FORMAT", default="json")
LOGGING["handlers"]["console"]["formatter"] = "plain" if LOG_FORMAT == "plain" else "json"  # noqa: F405
# Load balancers and orchestrators probe over plain HTTP inside the network: no redirect for them.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$"]
SESSION_COOKIE_HTTPONLY = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
# No silent fallback to the SQLite file of `make run` in production.
env("DATABASE_URL")
# Persistent connections, one per gunicorn thread: opening one per request cost a webhook delivery
# more than storing it (bench/NOTES.md, "Webhook intake"). Health checks are off by default: they
# cost a `SELECT 1` round trip on every request (a third of a delivery's time on the bench); without
# them a connection the server dropped (restart, failover) fails one request per thread with a 500
# and is then replaced, and Meta and Stripe resend what was not answered 200. Turn them on when a
# proxy or firewall closes idle connections often.
DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)  # noqa: F405
DATABASES["default"]["CONN_HEALTH_CHECKS"] = env.bool("CONN_HEALTH_CHECKS", default=False)  # noqa: F405
