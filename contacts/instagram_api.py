"""API endpoints for the workspace's Instagram account (mobile app): status, connect, disconnect.

The token is never part of an answer: only the account, its status and when access expires.
"""

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response

from accounts.api_base import WorkspaceView
from contacts import instagram


class InstagramStatusSerializer(serializers.Serializer):
    connected = serializers.BooleanField()
    account_id = serializers.CharField(allow_null=True, help_text="Instagram professional account id.")
    username = serializers.CharField(allow_null=True)
    status = serializers.ChoiceField(choices=["active", "broken"], allow_null=True,
                                     help_text="broken: Instagram rejected the access; reconnect to resume sends.")
    broken_reason = serializers.CharField(allow_null=True)
    token_expires_at = serializers.DateTimeField(allow_null=True, help_text="Renewed automatically before then.")


class InstagramConnectSerializer(serializers.Serializer):
    url = serializers.URLField(help_text="Instagram's consent page; the link works once, for 10 minutes.")


class InstagramDisconnectSerializer(serializers.Serializer):
    disconnected = serializers.BooleanField(help_text="False when no account was connected.")


def _status(workspace) -> dict:
    connection = instagram.connection_for(workspace=workspace)
    if connection is None:
        return {"connected": False, "account_id": None, "username": None, "status": None,
                "broken_reason": None, "token_expires_at": None}
    return {"connected": True, "account_id": connection.account_id, "username": connection.username,
            "status": connection.status, "broken_reason": connection.broken_reason or None,
            "token_expires_at": connection.token_expires_at}


class InstagramStatusView(WorkspaceView):
    @extend_schema(operation_id="instagram_status", responses={200: InstagramStatusSerializer}, tags=["instagram"])
    def get(self, request, workspace_id):
        """The workspace's connected Instagram account, if any."""
        return Response(InstagramStatusSerializer(_status(self.workspace)).data)


class InstagramConnectView(WorkspaceView):
    required_roles = {"POST": "admin"}

    @extend_schema(operation_id="instagram_connect", request=None, responses={200: InstagramConnectSerializer},
                   tags=["instagram"])
    def post(self, request, workspace_id):
        """Business Login for Instagram: the consent page to open. Instagram sends the browser back to
        /instagram/callback/, which stores the connection. Owners and admins only."""
        return Response({"url": instagram.connect_url(workspace=self.workspace, user=request.user)})


class InstagramDisconnectView(WorkspaceView):
    required_roles = {"POST": "admin"}

    @extend_schema(operation_id="instagram_disconnect", request=None,
                   responses={200: InstagramDisconnectSerializer}, tags=["instagram"])
    def post(self, request, workspace_id):
        """Unsubscribe the account from webhooks and delete its token. Owners and admins only."""
        return Response({"disconnected": instagram.connection_disconnect(workspace=self.workspace)})
