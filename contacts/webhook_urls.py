"""Meta's Instagram webhooks, mounted at /webhooks/instagram/ by inro/urls.py."""

from django.urls import path

from contacts import webhook_views

urlpatterns = [
    path("", webhook_views.instagram_webhook, name="instagram-webhook"),
    path("data-deletion/", webhook_views.data_deletion_callback, name="instagram-data-deletion"),
    path("data-deletion/<slug:code>/", webhook_views.data_deletion_status, name="instagram-data-deletion-status"),
]
