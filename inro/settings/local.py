"""Local development: `make run` on the embedded defaults."""

from inro.settings.base import *  # noqa: F403
from inro.settings.base import env

DEBUG = env.bool("DEBUG", default=True)
SECRET_KEY = env("SECRET_KEY", default="local-dev-only-not-a-secret")  # noqa: S105
