"""The Instagram connection pages (mounted at "" by inro/urls.py). Paths are contracts:
/instagram/callback/ is the redirect URI registered with Meta."""

from django.urls import include, path

from web import instagram_views

urlpatterns = [
    path("w/<id:workspace_id>/instagram/", instagram_views.instagram_page, name="instagram"),
    path("w/<id:workspace_id>/instagram/connect/", instagram_views.instagram_connect, name="instagram_connect"),
    path("w/<id:workspace_id>/instagram/disconnect/", instagram_views.instagram_disconnect,
         name="instagram_disconnect"),
    path("instagram/callback/", instagram_views.instagram_callback, name="instagram_callback"),
    # The offline demo's Meta: every view answers 404 unless settings.FAKE_META_ENABLED (local only).
    path("_fake_meta/", include("contacts.fakemeta.urls")),
]
