"""API endpoints of accounts: token login/logout for the mobile app, its devices, and the current user."""

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import exceptions, serializers, status
from rest_framework.permissions import AllowAny
from rest_framework.response import Response

from accounts import throttling
from accounts.api_base import ApiTokenAuthentication, ApiView
from accounts.selectors import api_tokens_of_user, workspaces_of_user
from accounts.services import api_token_create, api_token_revoke
from inro.api import (
    StrictCharField,
    StrictEmailField,
    StrictSerializer,
    UserThrottle,
)


class TokenRequestSerializer(StrictSerializer):
    email = StrictEmailField(max_length=254)
    password = StrictCharField(max_length=4096, trim_whitespace=False)
    name = StrictCharField(max_length=100, required=False, allow_blank=True,
                           help_text="Optional device name, e.g. \"Ana's iPhone\".")


class TokenSerializer(serializers.Serializer):
    token = serializers.CharField(help_text="Send it as `Authorization: Token <token>`. Shown only once.")
    device_id = serializers.IntegerField(help_text="This device in GET /auth/devices/.")
    device_key = serializers.CharField(
        help_text="Keep it and send it as the `Inro-Device` header when logging in again: other people's "
                  "failed attempts on your email then never slow this device down.")


DEVICE_KEY_PARAMETER = OpenApiParameter(
    name=throttling.DEVICE_HEADER, location=OpenApiParameter.HEADER, required=False,
    type={"type": "string", "maxLength": 500},
    description="The device_key an earlier login of this device returned: marks it as a trusted device.",
)


class TokenView(ApiView):
    # POST: log in a device and get its token. DELETE: revoke the token this request used.

    authentication_classes = [ApiTokenAuthentication]
    extra_error_statuses = {"POST": (401,)}

    def get_permissions(self):
        if self.request is not None and self.request.method == "POST":
            return [AllowAny()]
        return super().get_permissions()

    def get_throttles(self):
        # Logging in is limited by failed attempts (accounts.throttling, shared with the web form),
        # not by requests: a shared address full of people who know their passwords is never refused.
        if self.request is not None and self.request.method == "POST":
            return []
        return [UserThrottle()]

    def perform_authentication(self, request):
        # Logging in must work even with a stale token still in the client's headers.
        if request.method != "POST":
            super().perform_authentication(request)

    @extend_schema(operation_id="auth_token_create", request=TokenRequestSerializer, auth=[],
                   parameters=[DEVICE_KEY_PARAMETER], responses={200: TokenSerializer}, tags=["auth"])
    def post(self, request):
        """Log in a device: email and password in, a new token out (each device holds its own).

        Failed attempts slow further ones down (429 with Retry-After; the password is then not checked).
        """
        serializer = TokenRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        attempt = throttling.sign_in_attempt(request=request._request, email=data["email"], password=data["password"],
                                             device_key=request.headers.get(throttling.DEVICE_HEADER))
        if attempt.wait:
            refused = exceptions.Throttled(wait=attempt.wait)
            refused.message = throttling.wait_message(attempt.wait)  # why, and what else to do
            raise refused
        if attempt.user is None:
            raise exceptions.AuthenticationFailed("The email or password is not correct.", code="invalid_credentials")
        token, key = api_token_create(user=attempt.user, name=data.get("name", ""),
                                      user_agent=request.headers.get("User-Agent", ""))
        return Response({"token": key, "device_id": token.pk, "device_key": attempt.device_key},
                        status=status.HTTP_200_OK)

    @extend_schema(operation_id="auth_token_destroy", request=None, responses={204: None}, tags=["auth"])
    def delete(self, request):
        """Log out this device: revoke the token this request was made with (other devices stay logged in)."""
        api_token_revoke(token=request.auth)
        return Response(status=status.HTTP_204_NO_CONTENT)


class DeviceSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField(help_text="Given at login, else read from the device's User-Agent.")
    user_agent = serializers.CharField()
    created_at = serializers.DateTimeField(help_text="When the device logged in.")
    last_used_at = serializers.DateTimeField(allow_null=True, help_text="Last request (to the minute).")
    expires_at = serializers.DateTimeField(help_text="When its token stops working unless used before.")
    current = serializers.BooleanField(help_text="The device making this request.")


class DeviceListSerializer(serializers.Serializer):
    results = DeviceSerializer(many=True)


def _device_data(token, current) -> dict:
    return {"id": token.pk, "name": token.name, "user_agent": token.user_agent, "created_at": token.created_at,
            "last_used_at": token.last_used_at, "expires_at": token.expires_at, "current": token.pk == current.pk}


class DeviceListView(ApiView):
    @extend_schema(operation_id="auth_devices_list", responses={200: DeviceListSerializer}, tags=["auth"])
    def get(self, request):
        """The devices logged in to your account (one token each), most recently used first."""
        return Response({"results": [_device_data(token, request.auth)
                                     for token in api_tokens_of_user(user=request.user)]})


class DeviceDetailView(ApiView):
    @extend_schema(operation_id="auth_devices_destroy", responses={204: None}, tags=["auth"])
    def delete(self, request, device_id):
        """Log a device out: its token stops working at once (404 for a device that is not yours)."""
        token = next((t for t in api_tokens_of_user(user=request.user) if t.pk == device_id), None)
        if token is None:
            raise exceptions.NotFound("No such device of yours.")
        api_token_revoke(token=token)
        return Response(status=status.HTTP_204_NO_CONTENT)


class MembershipSerializer(serializers.Serializer):
    id = serializers.IntegerField(source="workspace.id")
    name = serializers.CharField(source="workspace.name")
    slug = serializers.CharField(source="workspace.slug")
    role = serializers.CharField()
    can_manage = serializers.BooleanField(help_text="Owners and admins: may launch campaigns and buy upgrades.")


class MeSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    email = serializers.EmailField()
    full_name = serializers.CharField()
    workspaces = MembershipSerializer(many=True)


class MeView(ApiView):
    @extend_schema(operation_id="me_retrieve", responses={200: MeSerializer}, tags=["auth"])
    def get(self, request):
        """The logged-in user and their workspaces, with their role in each."""
        user = request.user
        data = {"id": user.pk, "email": user.email, "full_name": user.full_name,
                "workspaces": workspaces_of_user(user=user)}
        return Response(MeSerializer(data).data)
