"""/_fake_stripe/: the offline demo's Stripe (404 unless settings.FAKE_STRIPE_ENABLED)."""

from django.urls import path

from billing.fakestripe import views

app_name = "fake_stripe"

urlpatterns = [
    path("v1/<path:path>", views.api, name="api"),
    path("checkout/pay/<str:session_id>", views.checkout_page, name="checkout"),
    path("portal/<str:portal_id>", views.portal_page, name="portal"),
    path("invoice/<str:invoice_id>", views.invoice_page, name="invoice"),
    path("invoice/<str:invoice_id>/pdf", views.invoice_pdf, name="invoice_pdf"),
]
