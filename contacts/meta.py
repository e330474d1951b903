"""The one module that talks to Meta: Business Login for Instagram, the Graph API (Send API, private
replies, webhook subscriptions, mention look-ups) and the token exchanges.

Every Graph call carries the calling workspace's own token (`Authorization: Bearer …`), except the
three that Meta defines with the token in the query string (the long-lived exchange and the refresh)
or in a form (the code exchange). Tokens and the app secret never reach an error message or a log
line: the URL with its query is never described, only the path, and anything Meta echoes back is
scrubbed of the secrets of the call.

Remote failures map to domain errors: `MetaError` (connect, refresh, look-ups) and, for sends,
`contacts.messaging.DeliveryError`. Rate limits (429), server errors (5xx), timeouts and dropped
connections are retried with exponential backoff, a bounded number of times; any other 4xx fails at
once. Meta's error code 190 (the token is invalid, expired or revoked) is `TokenRejected` /
`SendTokenRejected`, which marks the workspace's connection broken. No database work happens here.
"""

import json
import logging
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import requests
from django.conf import settings

from contacts import pacing
from contacts.instagram_connection import connection_credentials
from contacts.messaging import DeliveryError
from contacts.models import Message

logger = logging.getLogger(__name__)

MAX_BACKOFF_SECONDS = 60.0
TOKEN_REJECTED_CODE = 190
THROTTLE_CODES = pacing.THROTTLE_CODES
# Business Login scopes: profile (user id, username), DMs, comments (and so @mentions in comments).
SCOPES = ("instagram_business_basic", "instagram_business_manage_messages", "instagram_business_manage_comments")
# Webhook fields each connected account is subscribed to (docs/deploy.md says why each one):
# messages (DMs, story replies and mentions, echoes), messaging_postbacks (buttons, ice breakers),
# messaging_referral (ads and ig.me links opening a thread), comments (comment triggers, private
# replies) and mentions (@mentions captured as `collaboration`).
SUBSCRIBED_FIELDS = ("messages", "messaging_postbacks", "messaging_referral", "comments", "mentions")
_VERSION = re.compile(r"^v\d+(\.\d+)?$")


class MetaError(Exception):
    """Meta refused a call or could not be reached (after retries). The text never holds a secret."""

    def __init__(self, message: str, *, code: int | None = None, status: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.status = status


class TokenRejected(MetaError):
    """Meta's error 190: the token is invalid, expired or was revoked by the account."""


class SendTokenRejected(DeliveryError):
    """A send refused with error 190: the message waits for the workspace to reconnect."""

    token_rejected = True


@dataclass(frozen=True, slots=True)
class ShortLivedToken:
    access_token: str
    user_id: str

    def __repr__(self) -> str:  # never the token in a traceback or a debug page
        return f"ShortLivedToken(user_id={self.user_id!r})"


@dataclass(frozen=True, slots=True)
class LongLivedToken:
    access_token: str
    expires_in: int  # seconds

    def __repr__(self) -> str:
        return f"LongLivedToken(expires_in={self.expires_in})"


@dataclass(frozen=True, slots=True)
class Account:
    user_id: str  # the professional account id: `entry.id` of its webhooks
    username: str


def graph_host() -> str:
    """META_GRAPH_API_BASE without its version path (where the token exchanges live)."""
    parts = urlsplit(settings.META_GRAPH_API_BASE.rstrip("/"))
    segments = parts.path.rstrip("/").split("/")
    if segments and _VERSION.match(segments[-1]):
        segments = segments[:-1]
    return urlunsplit((parts.scheme, parts.netloc, "/".join(segments), "", "")).rstrip("/")


def _scrub(text: str, secrets: Iterable[str]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "[REDACTED]")
    return text


def _json(response: requests.Response) -> object:
    # The standard parser keeps JSON integers exact (a user id above 2**53 loses nothing).
    return json.loads(response.content.decode("utf-8"))


def _describe(response: requests.Response, secrets: Iterable[str] = ()) -> tuple[str, int | None]:
    """What Meta said, and its error code: Graph shape {"error": {...}} or OAuth shape {"error_message"}."""
    try:
        body = _json(response)
    except (ValueError, UnicodeDecodeError):
        body = {}
    body = body if isinstance(body, dict) else {}
    error = body.get("error")
    code = None
    message = ""
    if isinstance(error, dict):
        message = str(error.get("message") or "")
        code = error.get("code")
    elif body.get("error_message"):
        message = str(body.get("error_message"))
        code = body.get("code")
    code = code if isinstance(code, int) and not isinstance(code, bool) else None
    if message:
        return _scrub(f"Meta refused the request (HTTP {response.status_code}, code {code}): {message[:500]}",
                      secrets), code
    return f"Meta answered HTTP {response.status_code}.", code


def _retry_after(response: requests.Response) -> float | None:
    try:
        return max(float(response.headers.get("Retry-After", "")), 0.0)
    except ValueError:
        return None


def _pooled_session() -> requests.Session:
    """A session whose connection pool keeps as many connections to Meta open as the fan-out has calls
    in flight (META_SEND_CONCURRENCY): each call reuses a kept-alive connection."""
    session = requests.Session()
    size = max(10, int(getattr(settings, "META_SEND_CONCURRENCY", 10)))
    adapter = requests.adapters.HTTPAdapter(pool_connections=4, pool_maxsize=size)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session


class GraphClient:
    def __init__(
        self,
        *,
        base_url: str | None = None,
        max_attempts: int | None = None,
        backoff_base: float | None = None,
        timeout: float | None = None,
        sleep: Callable[[float], None] | None = None,
        session: requests.Session | None = None,
    ) -> None:
        self.base_url = (base_url or settings.META_GRAPH_API_BASE).rstrip("/")
        self.max_attempts = max(1, max_attempts or settings.META_GRAPH_MAX_ATTEMPTS)
        self.backoff_base = settings.META_GRAPH_RETRY_BASE_SECONDS if backoff_base is None else backoff_base
        self.timeout = timeout or settings.META_GRAPH_TIMEOUT_SECONDS
        # Looked up at call time so tests can stand in for the clock without waiting.
        self.sleep = sleep or (lambda seconds: time.sleep(seconds))
        self.session = session or _pooled_session()

    # --- sends -----------------------------------------------------------------------------------

    def send(self, *, account_id: str, access_token: str, recipient: dict, text: str, tag: str = "",
             before_attempt: Callable[[], object] | None = None,
             on_throttle: Callable[[float | None], object] | None = None) -> str:
        """POST /{account id}/messages with the account's own token; returns Meta's message id.

        `tag` ("HUMAN_AGENT"): sent as Meta's message tag (`"messaging_type": "MESSAGE_TAG"`), which lets
        a person's reply through 24 hours to 7 days after their last message. `before_attempt` runs
        before each attempt (the account's pacing slot), `on_throttle` when Meta throttles the account
        (429 or codes 4, 17, 32, 613; its argument is Retry-After, if any): see `request`."""
        if not access_token or not account_id:
            raise DeliveryError("This workspace has no Instagram account connected: nothing was sent.")
        payload = {"recipient": recipient, "message": {"text": text}}
        if tag:
            payload.update(messaging_type="MESSAGE_TAG", tag=tag)
        try:
            data = self.request("POST", f"{self.base_url}/{account_id}/messages", label="/messages",
                                token=access_token, json=payload, before_attempt=before_attempt,
                                on_throttle=on_throttle)
        except TokenRejected as error:
            raise SendTokenRejected(str(error)) from None
        except MetaError as error:
            raise DeliveryError(str(error)) from None
        message_id = data.get("message_id") if isinstance(data, dict) else None
        if not isinstance(message_id, str) or not message_id:
            raise DeliveryError("Meta accepted the request but returned no message id.")
        return message_id

    # --- every call ------------------------------------------------------------------------------

    def request(self, method: str, url: str, *, label: str, token: str = "", params: dict | None = None,
                json: dict | None = None, data: dict | None = None, secrets: Iterable[str] = (),
                before_attempt: Callable[[], object] | None = None,
                on_throttle: Callable[[float | None], object] | None = None) -> object:
        """One call with retries; the JSON answer. `label` names it in errors and logs (never the URL).

        Throttling (HTTP 429, or Meta's codes 4, 17, 32, 613 whatever the status) is retried: with
        `on_throttle`, that callback records the account's back-off and the next `before_attempt` waits
        it out (so every worker waits, not only this one), up to META_THROTTLE_MAX_RETRIES times, not
        counted in max_attempts; without it, with this client's own exponential backoff."""
        secrets = [s for s in (token, *secrets) if s]
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        kwargs = {"headers": headers, "timeout": self.timeout}
        if params is not None:
            kwargs["params"] = params
        if json is not None:
            kwargs["json"] = json
        if data is not None:
            kwargs["data"] = data
        call = getattr(self.session, method.lower())
        last_problem = ""
        throttles_left = max(0, int(getattr(settings, "META_THROTTLE_MAX_RETRIES", 10)))
        attempt = 0
        while attempt < self.max_attempts:
            attempt += 1
            retry_after = None
            if before_attempt is not None:
                before_attempt()
            try:
                response = call(url, **kwargs)
            except (requests.Timeout, requests.ConnectionError) as error:
                # The exception's text quotes the URL, query string (and so a token) included: not used.
                last_problem = f"{type(error).__name__} calling {label}"
            else:
                if response.status_code < 300:
                    try:
                        return _json(response)
                    except (ValueError, UnicodeDecodeError):
                        raise MetaError(f"Meta answered {label} with a body that is not JSON.") from None
                last_problem, code = _describe(response, secrets)
                if code == TOKEN_REJECTED_CODE:
                    raise TokenRejected(last_problem, code=code, status=response.status_code)
                throttled = response.status_code == 429 or code in THROTTLE_CODES
                if not throttled and response.status_code < 500:
                    raise MetaError(last_problem, code=code, status=response.status_code)
                retry_after = _retry_after(response)
                if throttled and on_throttle is not None and throttles_left:
                    throttles_left -= 1
                    attempt -= 1  # a throttle is not a failed attempt: the account waits, then sends
                    on_throttle(retry_after)
                    continue
            if attempt < self.max_attempts:
                delay = min(self.backoff_base * 2 ** (attempt - 1), MAX_BACKOFF_SECONDS)
                if retry_after is not None:
                    delay = min(max(delay, retry_after), MAX_BACKOFF_SECONDS)
                logger.warning("Graph API %s failed (attempt %s/%s): %s; retrying in %.1fs",
                               label, attempt, self.max_attempts, last_problem, delay)
                self.sleep(delay)
        raise MetaError(f"Gave up after {self.max_attempts} attempts: {last_problem}")


# --- Business Login and the account ----------------------------------------------------------------


def oauth_code_exchange(*, code: str, redirect_uri: str, client: GraphClient | None = None) -> ShortLivedToken:
    """The code from the consent redirect for a short-lived token and the account's user id.

    Meta answers `{"access_token", "user_id"}` (reference page) or `{"data": [{...}]}` (Business Login
    guide); both are read, and `user_id` is kept exact whether a JSON number or a string.
    """
    client = client or GraphClient()
    body = client.request("POST", settings.INSTAGRAM_TOKEN_URL, label="the code exchange", data={
        "client_id": settings.META_APP_ID, "client_secret": settings.META_APP_SECRET,
        "grant_type": "authorization_code", "redirect_uri": redirect_uri, "code": code,
    }, secrets=[settings.META_APP_SECRET, code])
    if isinstance(body, dict) and isinstance(body.get("data"), list) and body["data"]:
        body = body["data"][0]
    if not isinstance(body, dict):
        raise MetaError("The code exchange answered with an unexpected shape.")
    token, user_id = body.get("access_token"), body.get("user_id")
    if not isinstance(token, str) or not token:
        raise MetaError("The code exchange returned no access token.")
    if isinstance(user_id, bool) or not isinstance(user_id, int | str) or not str(user_id).strip():
        raise MetaError("The code exchange returned no user id.")
    return ShortLivedToken(access_token=token, user_id=str(user_id).strip())


def _long_lived(body: object, what: str) -> LongLivedToken:
    if not isinstance(body, dict) or not isinstance(body.get("access_token"), str) or not body["access_token"]:
        raise MetaError(f"The {what} returned no access token.")
    expires_in = body.get("expires_in")
    if isinstance(expires_in, bool) or not isinstance(expires_in, int) or expires_in <= 0:
        expires_in = 60 * 24 * 3600  # Meta's documented lifetime of a long-lived token
    return LongLivedToken(access_token=body["access_token"], expires_in=expires_in)


def long_lived_token_exchange(*, short_lived_token: str, client: GraphClient | None = None) -> LongLivedToken:
    """GET {graph host}/access_token?grant_type=ig_exchange_token: a token good for 60 days."""
    client = client or GraphClient()
    body = client.request("GET", f"{graph_host()}/access_token", label="/access_token", params={
        "grant_type": "ig_exchange_token", "client_secret": settings.META_APP_SECRET,
        "access_token": short_lived_token,
    }, secrets=[short_lived_token, settings.META_APP_SECRET])
    return _long_lived(body, "long-lived token exchange")


def token_refresh(*, access_token: str, client: GraphClient | None = None) -> LongLivedToken:
    """GET {graph host}/refresh_access_token?grant_type=ig_refresh_token: 60 more days."""
    client = client or GraphClient()
    body = client.request("GET", f"{graph_host()}/refresh_access_token", label="/refresh_access_token",
                          params={"grant_type": "ig_refresh_token", "access_token": access_token},
                          secrets=[access_token])
    return _long_lived(body, "token refresh")


def account_read(*, access_token: str, client: GraphClient | None = None) -> Account:
    """GET /me?fields=user_id,username: the professional account behind the token."""
    client = client or GraphClient()
    body = client.request("GET", f"{client.base_url}/me", label="/me", token=access_token,
                          params={"fields": "user_id,username"})
    if not isinstance(body, dict):
        raise MetaError("/me answered with an unexpected shape.")
    user_id = body.get("user_id")
    if isinstance(user_id, bool) or not isinstance(user_id, int | str) or not str(user_id).strip():
        raise MetaError("/me returned no user id.")
    username = body.get("username") if isinstance(body.get("username"), str) else ""
    return Account(user_id=str(user_id).strip(), username=username[:64])


def webhooks_subscribe(*, access_token: str, client: GraphClient | None = None) -> None:
    """POST /me/subscribed_apps: the account's webhooks come to this app, for SUBSCRIBED_FIELDS."""
    client = client or GraphClient()
    body = client.request("POST", f"{client.base_url}/me/subscribed_apps", label="/me/subscribed_apps",
                          token=access_token, params={"subscribed_fields": ",".join(SUBSCRIBED_FIELDS)})
    if isinstance(body, dict) and body.get("success") is False:
        raise MetaError("Meta did not subscribe the account to webhooks.")


def webhooks_unsubscribe(*, access_token: str, client: GraphClient | None = None) -> None:
    """DELETE /me/subscribed_apps: no more webhooks for this account."""
    client = client or GraphClient()
    client.request("DELETE", f"{client.base_url}/me/subscribed_apps", label="/me/subscribed_apps",
                   token=access_token)


def mention_author(*, access_token: str, account_id: str, comment_id: str = "", media_id: str = "",
                   client: GraphClient | None = None) -> tuple[str, str]:
    """Who @mentioned the account: the mentioning comment's author, or for a caption mention the
    media's owner. Returns (Instagram id, username)."""
    client = client or GraphClient()
    if comment_id:
        field = f"mentioned_comment.comment_id({comment_id}){{id,text,timestamp,from,username}}"
    else:
        field = f"mentioned_media.media_id({media_id}){{id,caption,owner,username}}"
    body = client.request("GET", f"{client.base_url}/{account_id}", label="the mention look-up",
                          token=access_token, params={"fields": field})
    node = body.get("mentioned_comment" if comment_id else "mentioned_media") if isinstance(body, dict) else None
    if not isinstance(node, dict):
        raise MetaError("The mention look-up answered without the mentioned object.")
    author = node.get("from") if comment_id else node.get("owner")
    author = author if isinstance(author, dict) else {}
    author_id = author.get("id")
    username = author.get("username") or node.get("username") or ""
    if isinstance(author_id, bool) or not isinstance(author_id, int | str) or not str(author_id).strip():
        raise MetaError("The mention look-up did not name the author.")
    return str(author_id).strip(), str(username)[:64]


# --- the send backend --------------------------------------------------------------------------------


class GraphBackend:
    """INSTAGRAM_SEND_BACKEND=graph: DMs by IGSID, private replies by the comment id they answer, each
    from the workspace's own account with its own token."""

    # Each send takes a slot of its account's rate first (contacts.pacing).
    paced = True

    def __init__(self, client: GraphClient | None = None, **client_options) -> None:
        self.client = client or GraphClient(**client_options)

    def workspace_context(self, *, workspace_id: int):
        """What a send of this workspace needs from the database, read once for a run of sends."""
        return connection_credentials(workspace_id=workspace_id) or _NOT_CONNECTED

    def deliver(self, message: Message, *, context=None) -> str:
        """Send one message; `context` (from `workspace_context`): no database read here, so any thread
        may call it."""
        credentials = context if context is not None else connection_credentials(workspace_id=message.workspace_id)
        if credentials is None or credentials is _NOT_CONNECTED:
            raise DeliveryError("This workspace has no Instagram account connected: nothing was sent.")
        if credentials.broken:
            raise SendTokenRejected("Instagram disconnected: reconnect the account to send.")
        if message.reply_to_comment_id:
            recipient = {"comment_id": message.reply_to_comment_id}
        else:
            recipient = {"id": message.contact.igsid}
        account_id = credentials.account_id
        lane = message_lane(message)
        return self.client.send(
            account_id=account_id, access_token=credentials.access_token, recipient=recipient, text=message.text,
            tag=message.tag, before_attempt=lambda: pacing.send_slot(account_id, lane=lane),
            on_throttle=lambda retry_after: pacing.account_back_off(account_id, retry_after),
        )


_NOT_CONNECTED = object()


def message_lane(message: Message) -> str:
    """Campaign messages are broadcasts; everything else (scenario replies, members' replies, paused
    messages of scenarios) is conversation, with its own share of the account's rate."""
    if message.origin == Message.Origin.AUTOMATED and message.automation_ref.startswith("campaign:"):
        return pacing.BROADCAST
    return pacing.CONVERSATION
