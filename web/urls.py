"""The customer web app's pages (mounted at ""): sign-in, the workspace pages. Paths are contracts."""

from django.urls import path

from web import account_views as views
from web import automation_views, contact_views, inbox_views, usage_views

urlpatterns = [
    path("", views.home, name="home"),
    path("login/", views.SignInView.as_view(), name="login"),
    path("logout/", views.SignOutView.as_view(), name="logout"),
    path("password-reset/", views.ResetView.as_view(), name="password_reset"),
    path("password-reset/sent/", views.ResetDoneView.as_view(), name="password_reset_done"),
    path("password-reset/<uidb64>/<token>/", views.ResetConfirmView.as_view(), name="password_reset_confirm"),
    path("password-reset/complete/", views.ResetCompleteView.as_view(), name="password_reset_complete"),
    path("w/<id:workspace_id>/", usage_views.usage_page, name="usage"),
    path("w/<id:workspace_id>/usage/settings/", usage_views.usage_settings, name="usage_settings"),
    path("w/<id:workspace_id>/activations.csv", usage_views.activations_csv, name="activations_csv"),
    path("w/<id:workspace_id>/inbox/", inbox_views.inbox_page, name="inbox"),
    path("w/<id:workspace_id>/inbox/live/", inbox_views.inbox_live, name="inbox_live"),
    path("w/<id:workspace_id>/inbox/<id:contact_id>/reply/", inbox_views.inbox_reply, name="inbox_reply"),
    path("w/<id:workspace_id>/contacts/", contact_views.contact_list_page, name="contacts"),
    path("w/<id:workspace_id>/contacts/<id:contact_id>/", contact_views.contact_page, name="contact"),
    path("w/<id:workspace_id>/contacts/<id:contact_id>/message/", contact_views.contact_message,
         name="contact_message"),
    path("w/<id:workspace_id>/contacts/<id:contact_id>/folders/", contact_views.contact_folder_add,
         name="contact_folder_add"),
    path("w/<id:workspace_id>/campaigns/", automation_views.campaigns_page, name="campaigns"),
    path("w/<id:workspace_id>/campaigns/<id:campaign_id>/", automation_views.campaign_page, name="campaign"),
    path("w/<id:workspace_id>/campaigns/<id:campaign_id>/launch/", automation_views.campaign_launch_view,
         name="campaign_launch"),
    path("w/<id:workspace_id>/campaigns/<id:campaign_id>/critical/", automation_views.campaign_critical_view,
         name="campaign_critical"),
    path("w/<id:workspace_id>/scenarios/", automation_views.scenarios_page, name="scenarios"),
]
