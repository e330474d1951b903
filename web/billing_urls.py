"""Customer billing pages under /w/<workspace_id>/billing/ (names in the "billing" namespace)."""

from django.urls import include, path

from web import billing_views as views

app_name = "billing"

urlpatterns = [
    path("w/<id:workspace_id>/billing/", views.overview, name="overview"),
    path("w/<id:workspace_id>/billing/checkout/", views.checkout, name="checkout"),
    path("w/<id:workspace_id>/billing/success/", views.checkout_success, name="checkout_success"),
    path("w/<id:workspace_id>/billing/cancel/", views.checkout_cancel, name="checkout_cancel"),
    path("w/<id:workspace_id>/billing/portal/", views.portal, name="portal"),
    path("w/<id:workspace_id>/billing/cancel-at-period-end/", views.cancel, name="cancel_at_period_end"),
    # The offline demo's Stripe: every view answers 404 unless settings.FAKE_STRIPE_ENABLED (local only).
    path("_fake_stripe/", include("billing.fakestripe.urls")),
]
