"""Automations' public routes (mounted at the site root by inro/urls.py)."""

from django.urls import path

from automations import views

urlpatterns = [
    path("hooks/scenarios/<id:scenario_id>/", views.scenario_webhook, name="scenario_webhook"),
]
