"""API endpoints of accounts: token login/logout for the mobile app and the current user."""

from django.contrib.auth import authenticate
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.permissions import AllowAny
from rest_framework.response import Response

from accounts.api_base import ApiTokenAuthentication, ApiView
from accounts.selectors import workspaces_of_user
from accounts.services import api_token_create, api_token_revoke
from inro.api import TokenObtainIPThrottle, UserThrottle
from inro.errors import ApplicationError


class TokenRequestSerializer(serializers.Serializer):
    email = serializers.EmailField(max_length=254)
    password = serializers.CharField(max_length=4096, trim_whitespace=False)
    name = serializers.CharField(max_length=100, required=False, allow_blank=True,
                                 help_text="Optional device name, e.g. \"Ana's iPhone\".")


class TokenSerializer(serializers.Serializer):
    token = serializers.CharField(help_text="Send it as `Authorization: Token <token>`. Shown only once.")


class TokenView(ApiView):
    # POST: log in a device and get its token. DELETE: revoke the token this request used.

    authentication_classes = [ApiTokenAuthentication]

    def get_permissions(self):
        if self.request is not None and self.request.method == "POST":
            return [AllowAny()]
        return super().get_permissions()

    def get_throttles(self):
        # Password guessing: POST is limited per client IP, whoever is asking.
        if self.request is not None and self.request.method == "POST":
            return [TokenObtainIPThrottle()]
        return [UserThrottle()]

    def perform_authentication(self, request):
        # Logging in must work even with a stale token still in the client's headers.
        if request.method != "POST":
            super().perform_authentication(request)

    @extend_schema(operation_id="auth_token_create", request=TokenRequestSerializer, auth=[],
                   responses={200: TokenSerializer}, tags=["auth"])
    def post(self, request):
        """Log in a device: email and password in, a new token out (each device holds its own)."""
        serializer = TokenRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        user = authenticate(request._request, username=data["email"].lower(), password=data["password"])
        if user is None or not user.is_active:
            raise ApplicationError("The email or password is not correct.", code="invalid_credentials", status=400)
        _, key = api_token_create(user=user, name=data.get("name", ""))
        return Response({"token": key}, status=status.HTTP_200_OK)

    @extend_schema(operation_id="auth_token_destroy", request=None, responses={204: None}, tags=["auth"])
    def delete(self, request):
        """Log out this device: revoke the token this request was made with (other devices stay logged in)."""
        api_token_revoke(token=request.auth)
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
