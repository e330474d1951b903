"""Meta's Instagram webhooks, mounted at /webhooks/instagram/ by inro/urls.py."""

from django.urls import path

from contacts import webhook_views

urlpatterns = [
    path("", webhook_views.instagram_webhook, name="instagram-webhook"),
]
