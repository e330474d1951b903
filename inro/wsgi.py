"""WSGI entry point (gunicorn inro.wsgi)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "inro.settings.production")

application = get_wsgi_application()
