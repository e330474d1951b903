"""/_fake_meta/: the offline demo's Meta (404 unless settings.FAKE_META_ENABLED)."""

from django.urls import path

from contacts.fakemeta import views

app_name = "fake_meta"

urlpatterns = [
    path("oauth/authorize", views.consent_page, name="consent"),
    path("<path:path>", views.api, name="api"),
]
