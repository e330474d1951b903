"""URL routes (filled in by the app's issue)."""

urlpatterns: list = []
