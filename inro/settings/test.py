"""Test settings: fast hashing, in-memory email, tasks run inline unless a test says otherwise."""

from inro.settings.base import *  # noqa: F403
from inro.settings.base import derived_fernet_key, env

DEBUG = False
SECRET_KEY = "test-only-not-a-secret"  # noqa: S105
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=True)
CELERY_BROKER_URL = env("TEST_CELERY_BROKER_URL", default="memory://")
CELERY_BROKER_TRANSPORT_OPTIONS = {}
# Pacing windows in the test process unless a test (or a worker it starts) points them at Redis.
META_PACING_URL = env("META_PACING_URL", default="memory://")
# One queue in tests (the fault tests' workers take their run's queue) unless a test routes otherwise.
CELERY_CONVERSATION_QUEUE = env("CELERY_CONVERSATION_QUEUE", default="")
CELERY_TASK_ROUTES = ({name: {"queue": CELERY_CONVERSATION_QUEUE} for name in CONVERSATION_TASKS}  # noqa: F405
                      if CELERY_CONVERSATION_QUEUE else {})
# One call to Meta at a time unless a test asks for more: stand-ins answer queued responses in order.
META_SEND_CONCURRENCY = env.int("META_SEND_CONCURRENCY", default=1)
STRIPE_SECRET_KEY = "sk_test_suite"  # noqa: S105
STRIPE_WEBHOOK_SECRET = "whsec_test_suite"  # noqa: S105
META_APP_SECRET = "meta_app_secret_test"  # noqa: S105
META_VERIFY_TOKEN = "meta_verify_token_test"  # noqa: S105
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
# No collected static files in tests: serve nothing through whitenoise (it warns about STATIC_ROOT).
MIDDLEWARE = [m for m in MIDDLEWARE if "whitenoise" not in m]  # noqa: F405
# The suite's integration receivers listen on 127.0.0.1; tests of the refusal set this to [].
OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.1/32"]
META_APP_ID = "meta_app_id_test"
INSTAGRAM_TOKEN_KEYS = [derived_fernet_key(SECRET_KEY, "instagram-test")]
