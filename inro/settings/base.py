"""Settings shared by every environment; everything variable comes from the environment."""

import base64
import hashlib
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent.parent
VAR_DIR = BASE_DIR / "var"

env = environ.Env()


def derived_fernet_key(secret: str, purpose: str) -> str:
    """A Fernet key derived from a secret: the local and test default of INSTAGRAM_TOKEN_KEYS only."""
    return base64.urlsafe_b64encode(hashlib.sha256(f"{purpose}:{secret}".encode()).digest()).decode()


environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

SECRET_KEY = env("SECRET_KEY", default="")
DEBUG = env.bool("DEBUG", default=False)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "drf_spectacular",
    "django_celery_beat",
    "accounts",
    "contacts",
    "billing",
    "automations",
    "web",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "inro.urls"
WSGI_APPLICATION = "inro.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# PostgreSQL only. `make run` and `make test` set DATABASE_URL themselves (inro/devdb.py); without
# it, the local server's database `inro`.
DATABASES = {
    "default": env.db("DATABASE_URL", default="postgres://postgres@127.0.0.1:5432/inro"),
}
if DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql":
    raise ImproperlyConfigured("DATABASE_URL must name a PostgreSQL database (postgres://...).")
DATABASES["default"]["ATOMIC_REQUESTS"] = False
DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=0)

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_USER_MODEL = "accounts.User"
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "login"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# The billing month (docs/product.md, "Month"): calendar month in this zone, installation-wide.
BILLING_TIME_ZONE = env("BILLING_TIME_ZONE", default="UTC")

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}

EMAIL_CONFIG = env.email_url("EMAIL_URL", default="consolemail://")
vars().update(EMAIL_CONFIG)
DEFAULT_FROM_EMAIL = env("DEFAULT_FROM_EMAIL", default="Inro <billing@inro.localhost>")
SITE_URL = env("SITE_URL", default="http://127.0.0.1:8000")

# Celery. The default broker is kombu's filesystem transport: no server needed for `make run`.
CELERY_BROKER_URL = env("CELERY_BROKER_URL", default="filesystem://")
CELERY_BROKER_TRANSPORT_OPTIONS = (
    {
        "data_folder_in": str(VAR_DIR / "broker"),
        "data_folder_out": str(VAR_DIR / "broker"),
        "processed_folder": str(VAR_DIR / "broker-processed"),
        "control_folder": str(VAR_DIR / "broker-control"),
        "store_processed": False,
    }
    if CELERY_BROKER_URL.startswith("filesystem")
    else {}
)
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TIMEZONE = "UTC"
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
# Periodic jobs live in the database schedule, registered by migrations (billing 0003).

REST_FRAMEWORK = {
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Inro API",
    "DESCRIPTION": "Activated-contacts metering and billing for the mobile app.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # A message's status appears in more than one component (a conversation's last message too).
    "ENUM_NAME_OVERRIDES": {"MessageStatusEnum": "contacts.models.Message.Status"},
}
# REST API: one error shape, throttle rates, Swagger UI served from our own static files.
REST_FRAMEWORK["EXCEPTION_HANDLER"] = "inro.api.exception_handler"
REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"] = {
    "user": env("API_THROTTLE_USER", default="1200/min"),
}
# Client IP for throttles: REMOTE_ADDR unless this many proxies in front add X-Forwarded-For.
REST_FRAMEWORK["NUM_PROXIES"] = env.int("API_NUM_PROXIES", default=0)
INSTALLED_APPS += ["drf_spectacular_sidecar"]
SPECTACULAR_SETTINGS.update({
    "SWAGGER_UI_DIST": "SIDECAR", "SWAGGER_UI_FAVICON_HREF": "SIDECAR", "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    # `<id:…>` path parameters (inro.converters) are integers to API clients, as `<int:…>` were.
    "PATH_CONVERTER_OVERRIDES": {"id": int},
    # 3.1: JSON Schema proper (propertyNames), so the schema can state what the server checks.
    "OAS_VERSION": "3.1.0",
    # Request bodies are closed (inro.api.StrictSerializer refuses unknown fields): the schema says so.
    "POSTPROCESSING_HOOKS": ["drf_spectacular.hooks.postprocess_schema_enums", "inro.api.schema_closed_request_bodies"],
})

# Stripe (issue: billing). Secrets have no defaults in production.
STRIPE_SECRET_KEY = env("STRIPE_SECRET_KEY", default="sk_test_local")
STRIPE_WEBHOOK_SECRET = env("STRIPE_WEBHOOK_SECRET", default="whsec_local")
STRIPE_PRICE_PRO = env("STRIPE_PRICE_PRO", default="price_pro_local")
STRIPE_PRICE_ADDON_PACK = env("STRIPE_PRICE_ADDON_PACK", default="price_addon_local")
STRIPE_API_BASE = env("STRIPE_API_BASE", default="")

# Meta / Instagram.
META_APP_SECRET = env("META_APP_SECRET", default="meta_app_secret_local")
META_VERIFY_TOKEN = env("META_VERIFY_TOKEN", default="meta_verify_token_local")
META_GRAPH_API_BASE = env("META_GRAPH_API_BASE", default="https://graph.instagram.com/v21.0")
# Business Login for Instagram: each workspace connects its own account (contacts/instagram.py); every
# Graph call uses that workspace's token. The consent page and the code exchange live on other hosts.
META_APP_ID = env("META_APP_ID", default="meta_app_id_local")
INSTAGRAM_AUTHORIZE_URL = env("INSTAGRAM_AUTHORIZE_URL", default="https://www.instagram.com/oauth/authorize")
INSTAGRAM_TOKEN_URL = env("INSTAGRAM_TOKEN_URL", default="https://api.instagram.com/oauth/access_token")
# Fernet keys (comma-separated): the first encrypts, every one decrypts, so keys rotate (docs/deploy.md).
# No default here: local and test settings generate one, production requires it.
INSTAGRAM_TOKEN_KEYS = env.list("INSTAGRAM_TOKEN_KEYS", default=[])
# A connect link (its signed `state`) is good for this many seconds, once.
INSTAGRAM_CONNECT_STATE_MAX_AGE = env.int("INSTAGRAM_CONNECT_STATE_MAX_AGE", default=600)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", default="INFO")},
}

# Outbound Instagram messages: "outbox" (default, stored only) or "graph" (Meta's Graph API).
INSTAGRAM_SEND_BACKEND = env("INSTAGRAM_SEND_BACKEND", default="outbox")

# Instagram webhook intake and the Graph API send backend.
META_WEBHOOK_MAX_BYTES = env.int("META_WEBHOOK_MAX_BYTES", default=1024 * 1024)
# A delivery still pending this long after it arrived is processed by the sweeper (broker outage).
META_WEBHOOK_SWEEP_AFTER_SECONDS = env.int("META_WEBHOOK_SWEEP_AFTER_SECONDS", default=120)
# A delivery whose processing was started this many times without finishing (the worker killed on it,
# or the database away each time) is marked failed instead of being taken again: one poison delivery
# must not crash the workers forever. Above the processing task's 8 retries for a database outage.
META_WEBHOOK_MAX_ATTEMPTS = env.int("META_WEBHOOK_MAX_ATTEMPTS", default=10)
# The webhook view nudges the drain task at most twice per this many seconds per process (at once, then
# once more at the end of the window); a drain handles this many deliveries before queueing itself again.
META_WEBHOOK_DRAIN_NUDGE_SECONDS = env.float("META_WEBHOOK_DRAIN_NUDGE_SECONDS", default=0.5)
META_WEBHOOK_DRAIN_BATCH = env.int("META_WEBHOOK_DRAIN_BATCH", default=500)
# The webhook's store statement is prepared once per connection (off behind a transaction pooler; see
# DATABASE_PGBOUNCER_TRANSACTION_POOLING, which turns it off by itself).
META_WEBHOOK_PREPARED_STATEMENTS = env.bool("META_WEBHOOK_PREPARED_STATEMENTS", default=True)
META_GRAPH_MAX_ATTEMPTS = env.int("META_GRAPH_MAX_ATTEMPTS", default=4)
META_GRAPH_RETRY_BASE_SECONDS = env.float("META_GRAPH_RETRY_BASE_SECONDS", default=1.0)
META_GRAPH_TIMEOUT_SECONDS = env.float("META_GRAPH_TIMEOUT_SECONDS", default=10.0)
# Pacing per Instagram account, shared by every worker (contacts/pacing.py): text messages a second
# (Meta allows 300), the share of it kept for conversational sends (scenario and inbox replies; campaigns
# get the rest), private replies an hour (Meta's limit), and the back-off of a throttled account when Meta
# sends no Retry-After. The windows live in Redis: META_PACING_URL, else the broker when it is Redis,
# else in the process (offline `make run`).
META_SEND_RATE = env.int("META_SEND_RATE", default=250)
META_CONVERSATION_RATE_SHARE = env.float("META_CONVERSATION_RATE_SHARE", default=0.1)
META_PRIVATE_REPLY_RATE = env.int("META_PRIVATE_REPLY_RATE", default=750)
# The private replies' window: an hour (Meta's); benches compress it.
META_PRIVATE_REPLY_WINDOW_SECONDS = env.int("META_PRIVATE_REPLY_WINDOW_SECONDS", default=3600)
META_PACING_URL = env("META_PACING_URL", default="")
META_THROTTLE_BACKOFF_SECONDS = env.float("META_THROTTLE_BACKOFF_SECONDS", default=60.0)
META_THROTTLE_BACKOFF_MAX_SECONDS = env.float("META_THROTTLE_BACKOFF_MAX_SECONDS", default=3600.0)
META_THROTTLE_MAX_RETRIES = env.int("META_THROTTLE_MAX_RETRIES", default=10)
# Calls to Meta in flight at once per worker process during a campaign's fan-out (threads sharing one
# HTTP connection pool; 64 × Meta's ~150 ms answers is room for 400 DMs/s); 1: one at a time.
META_SEND_CONCURRENCY = env.int("META_SEND_CONCURRENCY", default=64)
# Members' replies 24 hours to 7 days after the person's last message go out with Meta's HUMAN_AGENT tag
# (Meta grants the Human Agent feature per app). Off: those replies are refused like later ones.
META_HUMAN_AGENT_TAG = env.bool("META_HUMAN_AGENT_TAG", default=True)

# Data enrichment provider: a dotted class path; the default is a deterministic fake.
ENRICHMENT_BACKEND = env("ENRICHMENT_BACKEND", default="automations.enrichment.FakeEnrichmentBackend")

# Operations: probes, PgBouncer compatibility, request ids, JSON logs, metrics, Sentry.
READINESS_TIMEOUT_SECONDS = env.float("READINESS_TIMEOUT", default=2.0)
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    DATABASES["default"].setdefault("OPTIONS", {})
    DATABASES["default"]["OPTIONS"]["connect_timeout"] = env.int("DATABASE_CONNECT_TIMEOUT", default=5)
    if env.bool("DATABASE_PGBOUNCER_TRANSACTION_POOLING", default=False):
        # PgBouncer in transaction mode hands each transaction to any server connection: no
        # prepared statements (pinned off) and no cursors outliving a transaction.
        DATABASES["default"]["OPTIONS"]["prepare_threshold"] = None
        DATABASES["default"]["DISABLE_SERVER_SIDE_CURSORS"] = True
MIDDLEWARE.insert(0, "inro.observability.RequestIdMiddleware")
MIDDLEWARE.insert(MIDDLEWARE.index("django.middleware.security.SecurityMiddleware") + 1,
                  "inro.middleware.ContentSecurityPolicyMiddleware")
# Same-origin everything, no inline scripts, no framing. Inline styles are allowed (no script can run
# from CSS; the customer pages use none). Forms post only here, but the
# upgrade and portal forms redirect to Stripe's hosted pages, and Chromium applies form-action to
# that redirect too (the browser test of the upgrade caught it); so does "Connect Instagram", which
# redirects to Instagram's consent page.
CONTENT_SECURITY_POLICY = env(
    "CONTENT_SECURITY_POLICY",
    default="default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "font-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'self'; "
    "form-action 'self' https://checkout.stripe.com https://billing.stripe.com https://www.instagram.com; "
    "frame-ancestors 'none'",
)
SECURE_REFERRER_POLICY = "same-origin"
SESSION_COOKIE_HTTPONLY = True
DATA_UPLOAD_MAX_MEMORY_SIZE = env.int("DATA_UPLOAD_MAX_MEMORY_SIZE", default=2_621_440)
LOG_FORMAT = env("LOG_FORMAT", default="plain")  # "json" (the production default) or "plain"
if LOG_FORMAT not in ("plain", "json"):
    raise ImproperlyConfigured(f"LOG_FORMAT must be 'plain' or 'json', not {LOG_FORMAT!r}.")
LOGGING["filters"] = {
    "request_id": {"()": "inro.observability.RequestIdFilter"},
    "redact_secrets": {"()": "inro.observability.RedactSecretsFilter"},
}
LOGGING["formatters"]["plain"]["format"] = "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"
LOGGING["formatters"]["json"] = {"()": "inro.observability.JsonFormatter"}
LOGGING["handlers"]["console"]["filters"] = ["request_id", "redact_secrets"]
# urllib3 logs request lines with their query string at DEBUG: Meta's token exchanges carry the token
# (and the app secret) there. Redacted at the logger, before any handler sees the record.
LOGGING["loggers"] = {"urllib3.connectionpool": {"filters": ["redact_secrets"]}}
LOGGING["handlers"]["console"]["formatter"] = LOG_FORMAT
# Keep Django's LOGGING (JSON, redaction) in the worker instead of Celery's own root handler.
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
# Prometheus scrape token (empty: /metrics answers 404). Counters shared across processes live in
# the cache: use Redis in production (CACHE_URL=redis://...), locmem is per process.
METRICS_TOKEN = env("METRICS_TOKEN", default="")
CACHES = {"default": env.cache_url("CACHE_URL", default="locmemcache://")}
# Sentry: errors of web and worker processes are reported when SENTRY_DSN is set, else nothing is.
SENTRY_DSN = env("SENTRY_DSN", default="")
if SENTRY_DSN:
    from inro.sentry import configure_sentry

    configure_sentry(
        dsn=SENTRY_DSN,
        environment=env("SENTRY_ENVIRONMENT", default="production"),
        release=env("SENTRY_RELEASE", default=""),
        traces_sample_rate=env.float("SENTRY_TRACES_SAMPLE_RATE", default=0.0),
    )

# Processed webhook deliveries (raw bodies quote people's messages) are deleted after this many days.
META_WEBHOOK_RETENTION_DAYS = env.int("META_WEBHOOK_RETENTION_DAYS", default=30)

# Fault tolerance: a campaign "sending" without progress this long is queued again by the
# every-minute beat job (its worker died); Stripe webhook bodies above this size are refused (413).
CAMPAIGN_STALL_SECONDS = env.int("CAMPAIGN_STALL_SECONDS", default=300)
# An activation reservation still in flight this long after it was last taken is settled by the
# every-minute beat job (billing.activation.activations_settle): its worker died (rule 13).
ACTIVATION_SETTLE_SECONDS = env.int("ACTIVATION_SETTLE_SECONDS", default=600)
STRIPE_WEBHOOK_MAX_BYTES = env.int("STRIPE_WEBHOOK_MAX_BYTES", default=512 * 1024)
# Sign-in limits, web and API alike (accounts/throttling.py, docs/security.md): failures are counted per
# email and per client address; past the free ones each attempt waits, doubling from the base delay up
# to the cap. A counter is forgotten this long after its last failure. Devices that signed in before
# stay trusted this many days (they only answer to their own failures).
LOGIN_FREE_FAILURES = env.int("LOGIN_FREE_FAILURES", default=5)
LOGIN_FREE_FAILURES_PER_ADDRESS = env.int("LOGIN_FREE_FAILURES_PER_ADDRESS", default=50)
LOGIN_DELAY_BASE_SECONDS = env.int("LOGIN_DELAY_BASE_SECONDS", default=2)
LOGIN_DELAY_MAX_SECONDS = env.int("LOGIN_DELAY_MAX_SECONDS", default=15 * 60)
LOGIN_FAILURE_WINDOW_SECONDS = env.int("LOGIN_FAILURE_WINDOW_SECONDS", default=24 * 60 * 60)
LOGIN_DEVICE_TRUST_DAYS = env.int("LOGIN_DEVICE_TRUST_DAYS", default=180)
# The queue tasks go to when no route says otherwise (the fault tests give each run its own).
CELERY_TASK_DEFAULT_QUEUE = env("CELERY_TASK_DEFAULT_QUEUE", default="celery")
# A campaign fan-out's lease (automations.services.campaign_fanout): after a worker dies, another takes the
# campaign over once it runs out. 0 (the default): as long as CAMPAIGN_STALL_SECONDS, 5 minutes unless set.
CAMPAIGN_FANOUT_LEASE_SECONDS = env.int("CAMPAIGN_FANOUT_LEASE_SECONDS", default=0)
# Over the Graph API, a campaign's audience is frozen in batches of this many contacts, and a fan-out task
# sends for CAMPAIGN_TURN_SECONDS (shared by its workspace's sending campaigns) before it goes to the back
# of the queue: broadcasts of many workspaces take turns by account. 0: a task sends its campaign whole.
CAMPAIGN_NETWORK_BATCH_SIZE = env.int("CAMPAIGN_NETWORK_BATCH_SIZE", default=5000)
CAMPAIGN_TURN_SECONDS = env.float("CAMPAIGN_TURN_SECONDS", default=5.0)
# Conversational work (webhook intake, scenario runs) has a queue of its own, with workers of its own
# (Procfile `conversation`), so no broadcast delays a reply. Empty: everything on the default queue.
CELERY_CONVERSATION_QUEUE = env("CELERY_CONVERSATION_QUEUE", default="conversation")
CONVERSATION_TASKS = (
    "contacts.tasks.process_instagram_delivery", "contacts.tasks.drain_instagram_deliveries",
    "automations.tasks.scenario_run_execute", "automations.tasks.scenario_run_continue",
)
CELERY_TASK_ROUTES = ({name: {"queue": CELERY_CONVERSATION_QUEUE} for name in CONVERSATION_TASKS}
                      if CELERY_CONVERSATION_QUEUE else {})
# On PostgreSQL with the outbox backend, the fan-out writes its batches on two more connections while
# it gates the next one, committing them in order (automations.services.campaign_fanout._BatchWriter).
# False: one connection, in turn.
CAMPAIGN_FANOUT_OVERLAP = env.bool("CAMPAIGN_FANOUT_OVERLAP", default=True)
# The front door for request bodies (inro.middleware.RequestBodyLimitMiddleware, inro.untrusted): the
# API's body limit (the webhooks have META_WEBHOOK_MAX_BYTES and STRIPE_WEBHOOK_MAX_BYTES), and how
# deep JSON may nest in an API body or a webhook delivery.
API_MAX_BODY_BYTES = env.int("API_MAX_BODY_BYTES", default=256 * 1024)
JSON_MAX_DEPTH = env.int("JSON_MAX_DEPTH", default=32)
MIDDLEWARE.insert(MIDDLEWARE.index("inro.observability.RequestIdMiddleware") + 1,
                  "inro.middleware.RequestBodyLimitMiddleware")
# Networks customer-entered URLs (integration webhooks) may reach although they are not public
# (inro.outbound): none in production; e.g. OUTBOUND_ALLOWED_NETWORKS=127.0.0.1/32 for a local receiver.
OUTBOUND_ALLOWED_NETWORKS = env.list("OUTBOUND_ALLOWED_NETWORKS", default=[])
# API tokens (accounts.ApiToken, one per device): a token unused this many days stops working, and
# every token stops this many days after its login, used or not.
API_TOKEN_IDLE_DAYS = env.int("API_TOKEN_IDLE_DAYS", default=60)
API_TOKEN_MAX_AGE_DAYS = env.int("API_TOKEN_MAX_AGE_DAYS", default=365)
