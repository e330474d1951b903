"""The one module that talks to Meta's Graph API: the Instagram Send API and private replies.

Remote failures map to one domain error, `contacts.messaging.DeliveryError`. Rate limits (429), server
errors (5xx), timeouts and dropped connections are retried with exponential backoff, a bounded number
of times; any other 4xx is Meta refusing the message for good and fails at once. No database work
happens here: `send_message` writes the outcome after the call returns.
"""

import logging
import time
from collections.abc import Callable

import requests
from django.conf import settings

from contacts.messaging import DeliveryError
from contacts.models import Message

logger = logging.getLogger(__name__)

MAX_BACKOFF_SECONDS = 60.0


class GraphClient:
    def __init__(
        self,
        *,
        base_url: str | None = None,
        access_token: str | None = None,
        max_attempts: int | None = None,
        backoff_base: float | None = None,
        timeout: float | None = None,
        sleep: Callable[[float], None] | None = None,
        session: requests.Session | None = None,
    ) -> None:
        self.base_url = (base_url or settings.META_GRAPH_API_BASE).rstrip("/")
        self.access_token = access_token if access_token is not None else settings.META_PAGE_ACCESS_TOKEN
        self.max_attempts = max(1, max_attempts or settings.META_GRAPH_MAX_ATTEMPTS)
        self.backoff_base = settings.META_GRAPH_RETRY_BASE_SECONDS if backoff_base is None else backoff_base
        self.timeout = timeout or settings.META_GRAPH_TIMEOUT_SECONDS
        # Looked up at call time so tests can stand in for the clock without waiting.
        self.sleep = sleep or (lambda seconds: time.sleep(seconds))
        self.session = session or requests.Session()

    def send(self, *, recipient: dict, text: str) -> str:
        """POST /me/messages; returns Meta's message id."""
        data = self._post("/me/messages", {"recipient": recipient, "message": {"text": text}})
        message_id = data.get("message_id") if isinstance(data, dict) else None
        if not isinstance(message_id, str) or not message_id:
            raise DeliveryError("Meta accepted the request but returned no message id.")
        return message_id

    def _post(self, path: str, body: dict) -> dict:
        if not self.access_token:
            raise DeliveryError("META_PAGE_ACCESS_TOKEN is not set: cannot send through the Graph API.")
        url = f"{self.base_url}{path}"
        headers = {"Authorization": f"Bearer {self.access_token}"}
        last_problem = ""
        for attempt in range(1, self.max_attempts + 1):
            retry_after = None
            try:
                response = self.session.post(url, json=body, headers=headers, timeout=self.timeout)
            except (requests.Timeout, requests.ConnectionError) as error:
                last_problem = f"{type(error).__name__}: {error}"
            else:
                if response.status_code < 300:
                    try:
                        return response.json()
                    except ValueError:
                        raise DeliveryError("Meta answered with a body that is not JSON.") from None
                last_problem = _describe(response)
                if response.status_code != 429 and response.status_code < 500:
                    raise DeliveryError(last_problem)
                retry_after = _retry_after(response)
            if attempt < self.max_attempts:
                delay = min(self.backoff_base * 2 ** (attempt - 1), MAX_BACKOFF_SECONDS)
                if retry_after is not None:
                    delay = min(max(delay, retry_after), MAX_BACKOFF_SECONDS)
                logger.warning("Graph API %s failed (attempt %s/%s): %s; retrying in %.1fs",
                               path, attempt, self.max_attempts, last_problem, delay)
                self.sleep(delay)
        raise DeliveryError(f"Gave up after {self.max_attempts} attempts: {last_problem}")


def _describe(response: requests.Response) -> str:
    try:
        error = response.json().get("error", {})
    except (ValueError, AttributeError):
        error = {}
    if isinstance(error, dict) and error.get("message"):
        code = error.get("code")
        return f"Meta refused the message (HTTP {response.status_code}, code {code}): {error['message']}"
    return f"Meta answered HTTP {response.status_code}."


def _retry_after(response: requests.Response) -> float | None:
    try:
        return max(float(response.headers.get("Retry-After", "")), 0.0)
    except ValueError:
        return None


class GraphBackend:
    """INSTAGRAM_SEND_BACKEND=graph: DMs by IGSID, private replies by the comment id they answer."""

    def __init__(self, client: GraphClient | None = None, **client_options) -> None:
        self.client = client or GraphClient(**client_options)

    def deliver(self, message: Message) -> str:
        if message.reply_to_comment_id:
            recipient = {"comment_id": message.reply_to_comment_id}
        else:
            recipient = {"id": message.contact.igsid}
        return self.client.send(recipient=recipient, text=message.text)
