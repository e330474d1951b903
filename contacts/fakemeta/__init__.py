"""A small stand-in for the part of Meta that `contacts/meta.py` calls: Instagram's consent page, the
code exchange, the long-lived exchange and refresh, /me, webhook subscriptions, the Send API and the
mention look-ups. For tests (an HTTP server on a random port, `server.py`) and the offline demo
(mounted at /_fake_meta/ by local settings only, `views.py`); production never serves it.

Tokens are self-describing and signed (no state to lose when `make run` restarts): a token names the
account it was issued for, and the stand-in refuses it for any other account, as Meta does. Revoking
an account's access (`revoke`) makes every token issued before it answer error 190.
"""

import base64
import hashlib
import hmac
import json
import secrets
import threading
import time
from urllib.parse import urlencode

LONG_LIVED_SECONDS = 60 * 24 * 3600
SHORT_LIVED_SECONDS = 3600
CODE_SECONDS = 600
GRAPH_VERSION = "v21.0"


# The demo workspaces' accounts (seed_demo): their ids are the ones the demo data was made with.
DEMO_ACCOUNTS = {"sunny.skincare": "17841400000000001", "corner.coffee": "17841400000000002"}


def account_id_for(username: str) -> str:
    """The account id the stand-in gives a username: stable, and above 2**53 like Meta's ids."""
    if username in DEMO_ACCOUNTS:
        return DEMO_ACCOUNTS[username]
    digest = int(hashlib.sha256(username.encode()).hexdigest(), 16)
    return str(17841400000000000 + digest % 10**11)


class FakeMeta:
    def __init__(self, *, app_id: str, app_secret: str, signing_secret: str = "fake-meta",  # noqa: S107 - a stand-in's own key
                 data_shape: bool = False) -> None:
        self.app_id = app_id
        self.app_secret = app_secret
        self._key = hashlib.sha256(f"fake-meta:{signing_secret}".encode()).digest()
        # True: the code exchange answers {"data": [{...}]} (Business Login guide) instead of the flat shape.
        self.data_shape = data_shape
        self.lock = threading.Lock()
        self.revoked_before: dict[str, float] = {}
        self.used_codes: set[str] = set()
        self.subscriptions: dict[str, list[str]] = {}
        self.sent: list[dict] = []
        self.refused: list[dict] = []
        self.mention_authors: dict[str, tuple[str, str]] = {}
        self.calls: list[tuple[str, str]] = []

    # --- tokens --------------------------------------------------------------------------------------

    def _sign(self, data: dict) -> str:
        body = base64.urlsafe_b64encode(json.dumps(data, separators=(",", ":")).encode()).decode().rstrip("=")
        mac = hmac.new(self._key, body.encode(), hashlib.sha256).hexdigest()[:32]
        return f"{body}.{mac}"

    def _unsign(self, value: str) -> dict | None:
        body, _, mac = value.rpartition(".")
        expected = hmac.new(self._key, body.encode(), hashlib.sha256).hexdigest()[:32]
        if not body or not hmac.compare_digest(mac, expected):
            return None
        try:
            return json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
        except ValueError:
            return None

    def issue_token(self, *, username: str, kind: str = "long", lifetime: int = LONG_LIVED_SECONDS) -> str:
        now = time.time()
        data = {"a": account_id_for(username), "u": username, "k": kind, "t": now, "e": now + lifetime,
                "n": secrets.token_hex(4)}
        return "IGAA" + self._sign(data)

    def token_account(self, token: str, *, kind: str | None = None) -> dict | None:
        """The token's account when the token is valid now (not forged, expired or revoked)."""
        if not token.startswith("IGAA"):
            return None
        data = self._unsign(token[4:])
        if data is None or (kind and data.get("k") != kind):
            return None
        if data["e"] < time.time() or data["t"] <= self.revoked_before.get(data["a"], 0):
            return None
        return data

    def revoke(self, username: str) -> None:
        """The account removed the app: every token issued so far answers error 190."""
        with self.lock:
            self.revoked_before[account_id_for(username)] = time.time()

    # --- the consent page ------------------------------------------------------------------------------

    def authorize_redirect(self, query: dict, *, username: str, allow: bool) -> str | None:
        """Where the consent page sends the browser back (None: the request itself is invalid)."""
        redirect_uri = query.get("redirect_uri", "")
        if query.get("client_id") != self.app_id or not redirect_uri or query.get("response_type") != "code":
            return None
        state = query.get("state", "")
        if not allow:
            return f"{redirect_uri}?" + urlencode({"error": "access_denied", "error_reason": "user_denied",
                                                   "error_description": "The user denied your request.",
                                                   "state": state})
        code = self._sign({"a": account_id_for(username), "u": username, "r": redirect_uri,
                           "x": time.time() + CODE_SECONDS, "n": secrets.token_hex(4)})
        return f"{redirect_uri}?" + urlencode({"code": code, "state": state}) + "#_"

    # --- the API ---------------------------------------------------------------------------------------

    def handle(self, method: str, path: str, query: dict, form: dict, authorization: str = "",
               body: dict | None = None) -> tuple[int, dict]:
        """Answer one API call: `path` is relative to the stand-in's root."""
        with self.lock:
            self.calls.append((method, path))
        if path == "/api/oauth/access_token" and method == "POST":
            return self._code_exchange(form)
        if path == "/graph/access_token" and method == "GET":
            return self._long_lived(query)
        if path == "/graph/refresh_access_token" and method == "GET":
            return self._refresh(query)
        prefix = f"/graph/{GRAPH_VERSION}/"
        if not path.startswith(prefix):
            return 404, _error(100, "Unknown path components", "OAuthException")
        scheme, _, token = authorization.partition(" ")
        account = self.token_account(token.strip(), kind="long") if scheme.lower() == "bearer" else None
        if account is None:
            return 400, _error(190, "Error validating access token: the session is invalid or was revoked.",
                               "OAuthException")
        rest = path[len(prefix):].strip("/")
        if rest == "me" and method == "GET":
            return 200, {"user_id": int(account["a"]), "username": account["u"], "id": "9" + account["a"][-15:]}
        if rest == "me/subscribed_apps":
            with self.lock:
                if method == "DELETE":
                    self.subscriptions.pop(account["a"], None)
                else:
                    self.subscriptions[account["a"]] = query.get("subscribed_fields", "").split(",")
            return 200, {"success": True}
        target, _, tail = rest.partition("/")
        if target != account["a"]:
            with self.lock:
                self.refused.append({"account_id": target, "token_account": account["a"]})
            return 403, _error(10, "The access token belongs to another Instagram account.", "OAuthException")
        if tail == "messages" and method == "POST":
            body = body or {}
            with self.lock:
                self.sent.append({"account_id": target, "recipient": body.get("recipient"),
                                  "text": (body.get("message") or {}).get("text"), "body": body})
                number = len(self.sent)
            return 200, {"recipient_id": str((body.get("recipient") or {}).get("id", "")),
                         "message_id": f"fake.mid.{target}.{number}"}
        if tail == "" and method == "GET":
            return self._mention(target, query.get("fields", ""))
        return 404, _error(100, "Unsupported request", "GraphMethodException")

    def _code_exchange(self, form: dict) -> tuple[int, dict]:
        if form.get("client_id") != self.app_id or form.get("client_secret") != self.app_secret:
            return 400, {"error_type": "OAuthException", "code": 400, "error_message": "Invalid client credentials"}
        code = form.get("code", "")
        data = self._unsign(code)
        with self.lock:
            replayed = code in self.used_codes
            self.used_codes.add(code)
        if (data is None or replayed or data.get("x", 0) < time.time() or data.get("r") != form.get("redirect_uri")
                or form.get("grant_type") != "authorization_code"):
            return 400, {"error_type": "OAuthException", "code": 400,
                         "error_message": "This authorization code has been used or has expired"}
        token = self.issue_token(username=data["u"], kind="short", lifetime=SHORT_LIVED_SECONDS)
        # A JSON number above 2**53, as Meta's reference page shows it.
        answer = {"access_token": token, "user_id": int(data["a"]),
                  "permissions": ["instagram_business_basic", "instagram_business_manage_messages",
                                  "instagram_business_manage_comments"]}
        return 200, ({"data": [answer]} if self.data_shape else answer)

    def _long_lived(self, query: dict) -> tuple[int, dict]:
        if query.get("grant_type") != "ig_exchange_token" or query.get("client_secret") != self.app_secret:
            return 400, _error(100, "Invalid grant type or client secret", "OAuthException")
        account = self.token_account(query.get("access_token", ""), kind="short")
        if account is None:
            return 400, _error(190, "Invalid OAuth access token.", "OAuthException")
        return 200, {"access_token": self.issue_token(username=account["u"]), "token_type": "bearer",
                     "expires_in": LONG_LIVED_SECONDS}

    def _refresh(self, query: dict) -> tuple[int, dict]:
        if query.get("grant_type") != "ig_refresh_token":
            return 400, _error(100, "Invalid grant type", "OAuthException")
        account = self.token_account(query.get("access_token", ""), kind="long")
        if account is None:
            return 400, _error(190, "Invalid OAuth access token.", "OAuthException")
        return 200, {"access_token": self.issue_token(username=account["u"]), "token_type": "bearer",
                     "expires_in": LONG_LIVED_SECONDS}

    def _mention(self, account_id: str, fields: str) -> tuple[int, dict]:
        for field in ("mentioned_comment.comment_id(", "mentioned_media.media_id("):
            if fields.startswith(field):
                object_id = fields[len(field):].split(")", 1)[0]
                author_id, username = self.mention_authors.get(object_id) or (
                    account_id_for(f"fan{object_id}"), f"fan_{object_id[-4:]}")
                if field.startswith("mentioned_comment"):
                    node = {"id": object_id, "text": "@brand love this",
                            "from": {"id": author_id, "username": username}}
                    return 200, {"mentioned_comment": node, "id": account_id}
                node = {"id": object_id, "caption": "with @brand", "owner": {"id": author_id}, "username": username}
                return 200, {"mentioned_media": node, "id": account_id}
        return 400, _error(100, "Unsupported fields", "GraphMethodException")


def _error(code: int, message: str, kind: str) -> dict:
    return {"error": {"message": message, "type": kind, "code": code, "fbtrace_id": "FakeMetaTrace"}}
