"""Top-level URL configuration. Each include is owned by one app; the paths are public contracts."""

from django.contrib import admin
from django.urls import include, path, register_converter

from inro.converters import IdConverter

# `<id:…>` in every app's paths (and the admin's): registered before any of them is read below.
register_converter(IdConverter, "id")

urlpatterns = [
    path("admin/", admin.site.urls),
    path("webhooks/instagram/", include("contacts.webhook_urls")),
    path("webhooks/stripe/", include("billing.webhook_urls")),
    path("api/", include("web.api_urls")),
    path("", include("web.ops_urls")),
    path("", include("web.billing_urls")),
    path("", include("automations.urls")),
    path("", include("web.urls")),
    path("", include("web.instagram_urls")),
]
