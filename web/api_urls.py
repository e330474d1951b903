"""The REST API for the mobile app, mounted at /api/: versioned routes, schema and docs."""

from django.urls import path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from accounts.api import DeviceDetailView, DeviceListView, MeView, TokenView
from automations.api import (
    CampaignCancelView,
    CampaignDetailView,
    CampaignLaunchView,
    CampaignListView,
    CampaignPreviewView,
    EnrichmentJobListView,
    IntegrationDetailView,
    IntegrationListView,
    PausedActionListView,
    ScenarioDetailView,
    ScenarioDisableView,
    ScenarioEnableView,
    ScenarioListView,
    SegmentDetailView,
    SegmentEnrichView,
    SegmentListView,
    SegmentRunView,
)
from automations.selectors import paused_actions_waiting_count
from billing.api import (
    ActivationListView,
    CheckoutView,
    PortalView,
    SpendingControlsView,
    UsageHistoryView,
    UsageView,
)
from billing.selectors import contacts_filter_activated
from contacts.api import (
    ContactDetailView,
    ContactListView,
    ContactMessagesView,
    FolderContactsView,
    FolderDetailView,
    FolderListView,
)
from contacts.instagram_api import InstagramConnectView, InstagramDisconnectView, InstagramStatusView
from inro.api import NotFoundView
from web.api import ConversationListView, ConversationReadView

WS = "v1/workspaces/<id:workspace_id>/"

urlpatterns = [
    path("schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("docs/", SpectacularSwaggerSplitView.as_view(url_name="api-schema"), name="api-docs"),
    path("v1/auth/token/", TokenView.as_view(), name="api-token"),
    path("v1/auth/devices/", DeviceListView.as_view(), name="api-devices"),
    path("v1/auth/devices/<id:device_id>/", DeviceDetailView.as_view(), name="api-device"),
    path("v1/me/", MeView.as_view(), name="api-me"),
    path(WS + "usage/", UsageView.as_view(paused_actions_count=paused_actions_waiting_count), name="api-usage"),
    path(WS + "usage/history/", UsageHistoryView.as_view(), name="api-usage-history"),
    path(WS + "usage/settings/", SpendingControlsView.as_view(), name="api-usage-settings"),
    path(WS + "activations/", ActivationListView.as_view(), name="api-activations"),
    path(WS + "contacts/", ContactListView.as_view(activated_filter=contacts_filter_activated), name="api-contacts"),
    path(WS + "contacts/<id:contact_id>/", ContactDetailView.as_view(), name="api-contact"),
    path(WS + "contacts/<id:contact_id>/messages/", ContactMessagesView.as_view(), name="api-contact-messages"),
    path(WS + "conversations/", ConversationListView.as_view(), name="api-conversations"),
    path(WS + "conversations/<id:contact_id>/read/", ConversationReadView.as_view(), name="api-conversation-read"),
    path(WS + "folders/", FolderListView.as_view(), name="api-folders"),
    path(WS + "folders/<id:folder_id>/", FolderDetailView.as_view(), name="api-folder"),
    path(WS + "folders/<id:folder_id>/contacts/", FolderContactsView.as_view(), name="api-folder-contacts"),
    path(WS + "segments/", SegmentListView.as_view(), name="api-segments"),
    path(WS + "segments/<id:segment_id>/", SegmentDetailView.as_view(), name="api-segment"),
    path(WS + "segments/<id:segment_id>/run/", SegmentRunView.as_view(), name="api-segment-run"),
    path(WS + "segments/<id:segment_id>/enrichment-jobs/", SegmentEnrichView.as_view(), name="api-segment-enrich"),
    path(WS + "enrichment-jobs/", EnrichmentJobListView.as_view(), name="api-enrichment-jobs"),
    path(WS + "integrations/", IntegrationListView.as_view(), name="api-integrations"),
    path(WS + "integrations/<id:integration_id>/", IntegrationDetailView.as_view(), name="api-integration"),
    path(WS + "campaigns/", CampaignListView.as_view(), name="api-campaigns"),
    path(WS + "campaigns/<id:campaign_id>/", CampaignDetailView.as_view(), name="api-campaign"),
    path(WS + "campaigns/<id:campaign_id>/preview/", CampaignPreviewView.as_view(), name="api-campaign-preview"),
    path(WS + "campaigns/<id:campaign_id>/launch/", CampaignLaunchView.as_view(), name="api-campaign-launch"),
    path(WS + "campaigns/<id:campaign_id>/cancel/", CampaignCancelView.as_view(), name="api-campaign-cancel"),
    path(WS + "scenarios/", ScenarioListView.as_view(), name="api-scenarios"),
    path(WS + "scenarios/<id:scenario_id>/", ScenarioDetailView.as_view(), name="api-scenario"),
    path(WS + "scenarios/<id:scenario_id>/enable/", ScenarioEnableView.as_view(), name="api-scenario-enable"),
    path(WS + "scenarios/<id:scenario_id>/disable/", ScenarioDisableView.as_view(), name="api-scenario-disable"),
    path(WS + "paused-actions/", PausedActionListView.as_view(), name="api-paused-actions"),
    path(WS + "billing/checkout/", CheckoutView.as_view(), name="api-billing-checkout"),
    path(WS + "billing/portal/", PortalView.as_view(), name="api-billing-portal"),
    path(WS + "instagram/", InstagramStatusView.as_view(), name="api-instagram"),
    path(WS + "instagram/connect/", InstagramConnectView.as_view(), name="api-instagram-connect"),
    path(WS + "instagram/disconnect/", InstagramDisconnectView.as_view(), name="api-instagram-disconnect"),
    # Last: anything else under /api/ is a 404 in the API's error shape.
    # [\s\S], not ".": a newline (%0A) in the path is matched too, not left to Django's HTML 404.
    re_path(r"^[\s\S]*$", NotFoundView.as_view(), name="api-not-found"),
]
