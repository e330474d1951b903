"""Stripe's webhook endpoint, mounted at /webhooks/stripe/."""

from django.urls import path

from billing import webhook_views as views

app_name = "billing_webhooks"

urlpatterns = [
    path("", views.stripe_webhook, name="stripe"),
]
