"""API endpoints of the inbox: the conversations list and marking one read, for the mobile app.

Every member (not only owners and admins) reads and replies; replies go through the contact's messages
endpoint (`POST …/contacts/{id}/messages/`), the manual DM path: never counted, never blocked by the
quota (rule 6), within Meta's reply window (contacts/windows.py `reply_window`, the one shown here).

Polling is cheap: the list carries an `ETag` (a hash of what it shows, read state and windows
included), `If-None-Match` with it answers 304 with no body when nothing changed, and `since` (the
`since` of the previous answer) returns only the conversations with a message after that point.
"""

import json

from django.core.serializers.json import DjangoJSONEncoder
from django.http import HttpResponse
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound
from rest_framework.response import Response

from accounts.api_base import WorkspaceView
from contacts import services as contact_services
from contacts.models import Contact, Conversation, Message
from inro.api import cursor_page, validated_query
from web import inbox


class ConversationContactSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    username = serializers.CharField()
    name = serializers.CharField()
    source = serializers.ChoiceField(choices=Contact.Source.choices)
    activated_this_month = serializers.BooleanField(source="activated",
                                                    help_text="Counted as an activated contact this month.")


class ConversationMessageSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    sender = serializers.ChoiceField(choices=[inbox.PERSON, inbox.MEMBER, inbox.AUTOMATION],
                                     help_text="Who wrote it: the person, a member (by hand) or an automation.")
    sent_by = serializers.IntegerField(allow_null=True, help_text="The member's user id, for a member's message.")
    text = serializers.CharField()
    status = serializers.ChoiceField(choices=Message.Status.choices)
    created_at = serializers.DateTimeField()


class ReplyWindowSerializer(serializers.Serializer):
    state = serializers.ChoiceField(
        choices=["open", "human_agent", "closed"],
        help_text="open: a standard reply; human_agent: a reply goes out with Meta's HUMAN_AGENT tag; "
                  "closed: replies are refused (see reason).")
    closes_at = serializers.DateTimeField(allow_null=True, help_text="When the current state ends.")
    human_agent_until = serializers.DateTimeField(
        allow_null=True, help_text="7 days after the person's last message; null when human-agent replies are off.")
    closed_since = serializers.DateTimeField(allow_null=True)
    reason = serializers.CharField(help_text="Why replies are refused (closed only).")


class ConversationSerializer(serializers.Serializer):
    # The schema of a row; rows are built by `conversation_data` (a page of 50 through nested DRF
    # serializers cost more than the query itself).
    contact = ConversationContactSerializer()
    last_message = ConversationMessageSerializer(allow_null=True)
    last_activity_at = serializers.DateTimeField()
    unread = serializers.IntegerField(help_text="The person's messages you have not read.")
    waiting = serializers.BooleanField(help_text="The person wrote last: waiting for a reply.")
    limited = serializers.BooleanField(help_text="An automation for this person is paused at the quota.")
    reply_window = ReplyWindowSerializer()


_datetime = serializers.DateTimeField()


def _when(value):
    return None if value is None else _datetime.to_representation(value)


def conversation_data(row: Conversation, *, now=None) -> dict:
    """One conversation as the API shows it (ConversationSerializer's shape)."""
    message, contact = row.last_message, row.contact
    window = inbox.reply_window_of(contact, now=now)
    return {
        "contact": {"id": contact.pk, "username": contact.username, "name": contact.name, "source": contact.source,
                    "activated_this_month": row.activated},
        "last_message": None if message is None else {
            "id": message.pk, "sender": inbox.sender_of(message), "sent_by": message.sent_by_id,
            "text": message.text, "status": message.status, "created_at": _when(message.created_at)},
        "last_activity_at": _when(row.last_activity_at),
        "unread": row.unread,
        "waiting": message is not None and message.direction == Message.Direction.INBOUND,
        "limited": row.limited,
        "reply_window": {"state": window.state, "closes_at": _when(window.closes_at),
                         "human_agent_until": _when(window.human_agent_until),
                         "closed_since": _when(window.closed_since), "reason": window.reason},
    }


class ConversationQuerySerializer(serializers.Serializer):
    unread = serializers.BooleanField(required=False, allow_null=True, default=None,
                                      help_text="Only conversations with (true) or without (false) unread messages.")
    waiting = serializers.BooleanField(required=False, allow_null=True, default=None,
                                       help_text="Only conversations where the person wrote last (true) or not.")
    limited = serializers.BooleanField(required=False, allow_null=True, default=None,
                                       help_text="Only conversations where an automation is paused (true) or not.")
    source = serializers.ChoiceField(choices=Contact.Source.choices, required=False)
    since = serializers.RegexField(inbox.SINCE_PATTERN, max_length=37, required=False,
                                   error_messages={"invalid": "Use the `since` value of a previous answer as given."},
                                   help_text="A previous answer's `since`: only conversations with a newer message.")

    def validate_since(self, value: str) -> inbox.Since:
        since = inbox.Since.parse(value)
        if since is None:
            raise serializers.ValidationError("Use the `since` value of a previous answer as given.")
        return since


class ConversationPageSerializer(serializers.Serializer):
    next = serializers.URLField(allow_null=True)
    previous = serializers.URLField(allow_null=True)
    since = serializers.CharField(allow_null=True, help_text="Send it back as `since` to get only what is newer.")
    results = ConversationSerializer(many=True)


class ConversationListView(WorkspaceView):
    extra_error_statuses = {"GET": (400,)}
    serializer_class = ConversationSerializer
    pagination_class = cursor_page("-last_activity_at", "-contact_id")

    @extend_schema(
        operation_id="conversations_list", parameters=[
            ConversationQuerySerializer,
            OpenApiParameter("If-None-Match", OpenApiTypes.STR, OpenApiParameter.HEADER,
                             description="The ETag of a previous answer: 304 with no body when nothing changed."),
        ],
        responses={200: ConversationPageSerializer, 304: OpenApiResponse(description="Nothing changed.")},
        tags=["inbox"])
    def get(self, request, workspace_id):
        """The inbox: one row per conversation, newest activity first, with the unread count (yours), who
        wrote last and the reply window."""
        query = validated_query(ConversationQuerySerializer, request)
        rows = inbox.conversation_list(membership=self.membership, unread=query.get("unread"),
                                       waiting=query.get("waiting"), limited=query.get("limited"),
                                       source=query.get("source"), since=query.get("since"))
        page = inbox.conversation_rows_complete(membership=self.membership, rows=self.paginate_queryset(rows))
        now = timezone.now()
        since = inbox.since_of(page, query.get("since"))
        body = {
            "next": self.paginator.get_next_link(),
            "previous": self.paginator.get_previous_link(),
            "since": since.token() if since else None,
            "results": [conversation_data(row, now=now) for row in page],
        }
        # Encoded once: the ETag is the hash of the very bytes sent.
        content = json.dumps(body, cls=DjangoJSONEncoder, separators=(",", ":")).encode()
        etag = inbox.etag_for(content)
        if inbox.if_none_match(request.headers.get("If-None-Match"), etag):
            response = HttpResponse(status=status.HTTP_304_NOT_MODIFIED)
        else:
            response = HttpResponse(content, content_type="application/json")
        response["ETag"] = etag
        response["Cache-Control"] = "private, no-cache"
        return response


class ConversationReadResultSerializer(serializers.Serializer):
    contact_id = serializers.IntegerField()
    read_up_to = serializers.IntegerField(help_text="Id of the person's newest message, now read (0: none).")
    unread = serializers.IntegerField()


class ConversationReadView(WorkspaceView):
    serializer_class = ConversationReadResultSerializer

    @extend_schema(operation_id="conversations_read", request=None,
                   responses={200: ConversationReadResultSerializer}, tags=["inbox"])
    def post(self, request, workspace_id, contact_id):
        """Mark the conversation read, for you only: other members keep their own unread counts."""
        contact = Contact.objects.filter(workspace=self.workspace, pk=contact_id).first()
        if contact is None:
            raise NotFound("No such contact in this workspace.")
        read_up_to = contact_services.conversation_mark_read(membership=self.membership, contact=contact)
        row = inbox.conversation_get(membership=self.membership, contact_id=contact.pk)
        return Response({"contact_id": contact.pk, "read_up_to": read_up_to, "unread": row.unread if row else 0})
