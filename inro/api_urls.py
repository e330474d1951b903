"""The REST API for the mobile app (issue 6), mounted at /api/: versioned routes, schema and docs."""

from django.urls import path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from accounts.api import MeView, TokenView
from billing.api import ActivationListView, UsageHistoryView, UsageView
from contacts.api import (
    ContactDetailView,
    ContactListView,
    ContactMessagesView,
    FolderContactsView,
    FolderDetailView,
    FolderListView,
)
from inro.api import NotFoundView

WS = "v1/workspaces/<int:workspace_id>/"

urlpatterns = [
    path("schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("v1/auth/token/", TokenView.as_view(), name="api-token"),
    path("v1/me/", MeView.as_view(), name="api-me"),
    path(WS + "usage/", UsageView.as_view(), name="api-usage"),
    path(WS + "usage/history/", UsageHistoryView.as_view(), name="api-usage-history"),
    path(WS + "activations/", ActivationListView.as_view(), name="api-activations"),
    path(WS + "contacts/", ContactListView.as_view(), name="api-contacts"),
    path(WS + "contacts/<int:contact_id>/", ContactDetailView.as_view(), name="api-contact"),
    path(WS + "contacts/<int:contact_id>/messages/", ContactMessagesView.as_view(), name="api-contact-messages"),
    path(WS + "folders/", FolderListView.as_view(), name="api-folders"),
    path(WS + "folders/<int:folder_id>/", FolderDetailView.as_view(), name="api-folder"),
    path(WS + "folders/<int:folder_id>/contacts/", FolderContactsView.as_view(), name="api-folder-contacts"),
    # Last: anything else under /api/ is a 404 in the API's error shape.
    re_path(r"^.*$", NotFoundView.as_view(), name="api-not-found"),
]
