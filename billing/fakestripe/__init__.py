"""A small in-memory stand-in for the part of Stripe's API billing uses, for tests and the offline demo.

`localstripe` has no Checkout, Prices or billing portal, so this fake implements just the endpoints
`billing/stripe_client.py` calls, answering with objects shaped like Stripe's own fixtures
(`fixtures.json`, from Stripe's OpenAPI repository) and honouring Idempotency-Key like Stripe does.
It also plays the customer's side (`checkout_complete`, `invoice_payment_failed`, ...) and builds the
webhook events Stripe would send, signed with `sign_payload` exactly as Stripe signs them.
It never runs in production: the HTTP server is started by tests, the demo mount only under DEBUG.
"""

import copy
import hashlib
import hmac
import json
import re
import secrets
import threading
import time
from pathlib import Path
from urllib.parse import parse_qsl

API_VERSION = "2025-11-17.clover"
MONTH_SECONDS = 30 * 24 * 3600

_FIXTURES = json.loads((Path(__file__).with_name("fixtures.json")).read_text())["resources"]


def fixture(resource: str) -> dict:
    return copy.deepcopy(_FIXTURES[resource])


def sign_payload(payload: str, secret: str, timestamp: int | None = None) -> str:
    """The Stripe-Signature header Stripe sends: t=<unix seconds>,v1=<HMAC-SHA256 of "t.payload">."""
    timestamp = int(time.time()) if timestamp is None else timestamp
    signature = hmac.new(secret.encode(), f"{timestamp}.{payload}".encode(), hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={signature}"


def form_decode(body: str) -> dict:
    """Stripe's form encoding (a[b][0][c]=v) back into nested dicts and lists."""
    root: dict = {}
    for key, value in parse_qsl(body, keep_blank_values=True):
        parts = re.findall(r"[^\[\]]+", key)
        node = root
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value

    def listify(node):
        if isinstance(node, dict):
            node = {k: listify(v) for k, v in node.items()}
            if node and all(k.isdigit() for k in node):
                return [node[k] for k in sorted(node, key=int)]
        return node

    return listify(root)


class FakeStripeError(Exception):
    def __init__(self, status: int, type_: str, message: str, code: str = "") -> None:
        super().__init__(message)
        self.status, self.type, self.message, self.code = status, type_, message, code

    def body(self) -> dict:
        error = {"type": self.type, "message": self.message}
        if self.code:
            error["code"] = self.code
        return {"error": error}


class FakeStripe:
    """State and behaviour of the fake; thread-safe (the HTTP server serves from threads)."""

    def __init__(self, *, hosted_base: str = "https://fake-stripe.invalid") -> None:
        self.hosted_base = hosted_base.rstrip("/")
        self.lock = threading.RLock()
        self.sessions: dict[str, dict] = {}
        self.session_line_items: dict[str, list[dict]] = {}
        self.session_subscription_metadata: dict[str, dict] = {}
        self.subscriptions: dict[str, dict] = {}
        self.customers: dict[str, dict] = {}
        self.invoices: dict[str, dict] = {}
        self.portal_sessions: dict[str, dict] = {}
        # price id -> (unit amount in cents, what an invoice line calls it); unknown prices are priced
        # like the local defaults (a $49 plan, $29 packs) by their position on the subscription.
        self.prices: dict[str, tuple[int, str]] = {}
        self.invoice_numbers = 0
        self.requests: list[dict] = []
        self.failures: list[tuple[str, str, FakeStripeError]] = []
        self._idempotent: dict[str, tuple[str, tuple[int, dict]]] = {}
        self.clock: int | None = None
        # Tests: called with (method, path, params) before answering, e.g. to look at the database then.
        self.before_request = None

    # --- helpers
    def now(self) -> int:
        return self.clock if self.clock is not None else int(time.time())

    @staticmethod
    def new_id(prefix: str) -> str:
        return f"{prefix}_{secrets.token_hex(12)}"

    def fail_next(self, method: str, path_prefix: str, *, status: int = 500, type_: str = "api_error",
                  message: str = "An unknown error occurred.") -> None:
        """The next matching request gets a Stripe error response (once)."""
        with self.lock:
            self.failures.append((method.upper(), path_prefix, FakeStripeError(status, type_, message)))

    def calls(self, method: str, path_prefix: str) -> list[dict]:
        return [r for r in self.requests if r["method"] == method and r["path"].startswith(path_prefix)]

    # --- the HTTP API
    def handle(self, method: str, path: str, body: str = "", *, idempotency_key: str = "",
               authorization: str = "", stripe_version: str = "") -> tuple[int, dict]:
        method = method.upper()
        params = form_decode(body) if body else {}
        if self.before_request is not None:
            self.before_request(method, path, params)
        with self.lock:
            self.requests.append({"method": method, "path": path, "params": params,
                                  "idempotency_key": idempotency_key, "stripe_version": stripe_version})
            if not authorization.startswith("Bearer sk_"):
                return 401, FakeStripeError(401, "invalid_request_error", "Invalid API Key provided.").body()
            for index, (fail_method, prefix, error) in enumerate(self.failures):
                if fail_method == method and path.startswith(prefix):
                    del self.failures[index]
                    return error.status, error.body()
            if method == "POST" and idempotency_key:
                seen = self._idempotent.get(idempotency_key)
                if seen is not None:
                    if seen[0] != f"{path}?{body}":
                        return 400, FakeStripeError(400, "idempotency_error", "Keys for idempotent requests "
                                                    "can only be used with the same parameters.").body()
                    return seen[1]
            try:
                result = 200, self._route(method, path, params)
            except FakeStripeError as error:
                result = error.status, error.body()
            if method == "POST" and idempotency_key:
                self._idempotent[idempotency_key] = (f"{path}?{body}", result)
            return result

    def _route(self, method: str, path: str, params: dict) -> dict:
        parts = [p for p in path.split("/") if p]
        if parts[:1] != ["v1"]:
            raise FakeStripeError(404, "invalid_request_error", f"Unrecognized request URL ({method}: {path}).")
        parts = parts[1:]
        if parts == ["checkout", "sessions"] and method == "POST":
            return self.checkout_session_create(params)
        if parts[:2] == ["checkout", "sessions"] and len(parts) == 3 and method == "GET":
            return copy.deepcopy(self._get(self.sessions, parts[2], "checkout.session"))
        if parts == ["billing_portal", "sessions"] and method == "POST":
            return self.portal_session_create(params)
        if parts[:1] == ["subscriptions"] and len(parts) == 2:
            if method == "GET":
                return copy.deepcopy(self._get(self.subscriptions, parts[1], "subscription"))
            return self.subscription_update(parts[1], params)
        if parts == ["invoices", "create_preview"] and method == "POST":
            return self.invoice_preview(params)
        if parts == ["invoices"] and method == "GET":
            return self.invoice_list(params)
        if parts[:1] == ["invoices"] and len(parts) == 2 and method == "GET":
            return copy.deepcopy(self._get(self.invoices, parts[1], "invoice"))
        if parts[:1] == ["customers"] and len(parts) == 2 and method == "GET":
            return copy.deepcopy(self._get(self.customers, parts[1], "customer"))
        raise FakeStripeError(404, "invalid_request_error", f"Unrecognized request URL ({method}: {path}).")

    @staticmethod
    def _get(store: dict, object_id: str, name: str) -> dict:
        if object_id not in store:
            raise FakeStripeError(404, "invalid_request_error", f"No such {name}: '{object_id}'", "resource_missing")
        return store[object_id]

    def checkout_session_create(self, params: dict) -> dict:
        for required in ("mode", "success_url", "cancel_url"):
            if not params.get(required):
                raise FakeStripeError(400, "invalid_request_error", f"Missing required param: {required}.",
                                      "parameter_missing")
        line_items = params.get("line_items") or []
        if not line_items or any(int(item.get("quantity") or 0) < 1 for item in line_items):
            raise FakeStripeError(400, "invalid_request_error", "Invalid line_items.", "parameter_invalid_integer")
        session = fixture("checkout.session")
        session_id = self.new_id("cs_test")
        session.update({
            "id": session_id, "mode": params["mode"], "status": "open", "payment_status": "unpaid",
            "url": f"{self.hosted_base}/checkout/pay/{session_id}", "success_url": params["success_url"],
            "cancel_url": params["cancel_url"], "client_reference_id": params.get("client_reference_id"),
            "metadata": params.get("metadata") or {}, "customer": params.get("customer"),
            "customer_email": params.get("customer_email"), "subscription": None, "invoice": None,
            "created": self.now(), "expires_at": self.now() + 24 * 3600, "livemode": False,
            "payment_intent": None, "amount_total": None, "amount_subtotal": None,
        })
        self.sessions[session_id] = session
        self.session_line_items[session_id] = [
            {"price": item["price"], "quantity": int(item["quantity"])} for item in line_items
        ]
        self.session_subscription_metadata[session_id] = (params.get("subscription_data") or {}).get("metadata") or {}
        return copy.deepcopy(session)

    def portal_session_create(self, params: dict) -> dict:
        customer = params.get("customer") or ""
        self._get(self.customers, customer, "customer")
        portal = fixture("billing_portal.session")
        portal_id = self.new_id("bps")
        portal.update({"id": portal_id, "customer": customer, "return_url": params.get("return_url"),
                       "url": f"{self.hosted_base}/portal/{portal_id}", "flow": None, "livemode": False,
                       "created": self.now(), "configuration": "bpc_fake"})
        self.portal_sessions[portal_id] = portal
        return copy.deepcopy(portal)

    def subscription_update(self, subscription_id: str, params: dict) -> dict:
        subscription = self._get(self.subscriptions, subscription_id, "subscription")
        items = subscription["items"]["data"]
        if params.get("proration_behavior") == "always_invoice" and params.get("items"):
            lines = self._proration_lines(subscription, params.get("items") or [], self.now())
            if lines:
                invoice = self._invoice(subscription, status="paid", lines=lines, billing_reason="subscription_update")
                subscription["latest_invoice"] = invoice["id"]
        for change in params.get("items") or []:
            if change.get("id"):
                item = next((i for i in items if i["id"] == change["id"]), None)
                if item is None:
                    raise FakeStripeError(400, "invalid_request_error", f"No such subscription item: {change['id']}")
                if change.get("deleted") == "true":
                    items.remove(item)
                elif "quantity" in change:
                    item["quantity"] = int(change["quantity"])
            elif change.get("price"):
                items.append(self._item(subscription, change["price"], int(change.get("quantity") or 1)))
        if "cancel_at_period_end" in params:
            subscription["cancel_at_period_end"] = params["cancel_at_period_end"] == "true"
        subscription["last_proration_behavior"] = params.get("proration_behavior")
        return self._public(subscription)

    @staticmethod
    def _public(subscription: dict) -> dict:
        out = copy.deepcopy(subscription)
        out.pop("last_proration_behavior", None)
        return out

    def _item(self, subscription: dict, price_id: str, quantity: int) -> dict:
        item = copy.deepcopy(fixture("subscription")["items"]["data"][0])
        period = subscription["items"]["data"][0] if subscription["items"]["data"] else None
        start = period["current_period_start"] if period else self.now()
        item.update({"id": self.new_id("si"), "quantity": quantity, "subscription": subscription["id"],
                     "created": self.now(), "metadata": {}, "current_period_start": start,
                     "current_period_end": start + MONTH_SECONDS})
        item["price"].update({"id": price_id, "product": f"prod_{price_id}", "transform_quantity": None})
        item["plan"].update({"id": price_id, "interval_count": 1, "currency": "usd", "billing_scheme": "per_unit",
                             "transform_usage": None})
        return item

    # --- the customer's and Stripe's side
    def event(self, type_: str, obj: dict, *, created: int | None = None,
              previous_attributes: dict | None = None) -> dict:
        event = fixture("event")
        data = {"object": copy.deepcopy(obj)}
        if previous_attributes is not None:
            data["previous_attributes"] = previous_attributes
        event.update({"id": self.new_id("evt"), "type": type_, "created": self.now() if created is None else created,
                      "data": data, "api_version": API_VERSION, "livemode": False, "pending_webhooks": 1,
                      "request": {"id": None, "idempotency_key": None}})
        return event

    def checkout_complete(self, session_id: str) -> list[dict]:
        """The customer pays: customer, subscription and paid invoice appear; returns Stripe's events."""
        with self.lock:
            session = self._get(self.sessions, session_id, "checkout.session")
            customer_id = session.get("customer") or self.new_id("cus")
            if customer_id not in self.customers:
                customer = fixture("customer")
                customer.update({"id": customer_id, "email": session.get("customer_email"), "created": self.now(),
                                 "metadata": {}, "livemode": False})
                self.customers[customer_id] = customer
            subscription = fixture("subscription")
            subscription_id = self.new_id("sub")
            now = self.now()
            subscription.update({
                "id": subscription_id, "customer": customer_id, "status": "active", "created": now,
                "start_date": now, "billing_cycle_anchor": now, "cancel_at": None, "canceled_at": None,
                "ended_at": None, "cancel_at_period_end": False, "trial_start": None, "trial_end": None,
                "pending_update": None, "schedule": None, "livemode": False, "transfer_data": None,
                "metadata": self.session_subscription_metadata.get(session_id, {}),
                "next_pending_invoice_item_invoice": None, "billing_schedules": [],
            })
            subscription["items"] = {"object": "list", "data": [], "has_more": False,
                                     "url": f"/v1/subscription_items?subscription={subscription_id}"}
            for line in self.session_line_items[session_id]:
                item = self._item(subscription, line["price"], line["quantity"])
                item["current_period_start"], item["current_period_end"] = now, now + MONTH_SECONDS
                subscription["items"]["data"].append(item)
            invoice = self._invoice(subscription, status="paid")
            subscription["latest_invoice"] = invoice["id"]
            self.subscriptions[subscription_id] = subscription
            session.update({"status": "complete", "payment_status": "paid", "customer": customer_id,
                            "subscription": subscription_id, "invoice": invoice["id"]})
            return [
                self.event("checkout.session.completed", session),
                self.event("customer.subscription.created", self._public(subscription)),
                self.event("invoice.paid", invoice),
            ]

    # --- prices, invoices and previews
    def price_set(self, price_id: str, unit_amount: int, name: str) -> None:
        with self.lock:
            self.prices[price_id] = (unit_amount, name)

    def _price(self, subscription: dict, price_id: str) -> tuple[int, str]:
        if price_id in self.prices:
            return self.prices[price_id]
        items = subscription["items"]["data"]
        first = bool(items) and items[0]["price"]["id"] == price_id
        return (4900, "Pro plan") if first else (2900, "Add-on pack")

    @staticmethod
    def _period(subscription: dict) -> tuple[int, int]:
        items = subscription["items"]["data"]
        if not items:
            return 0, 0
        return items[0]["current_period_start"], items[0]["current_period_end"]

    def _line(self, subscription: dict, *, price_id: str, quantity: int, amount: int, start: int, end: int,
              description: str, proration: bool = False, item_id: str | None = None) -> dict:
        return {
            "id": self.new_id("il"), "object": "line_item", "amount": amount, "currency": "usd",
            "description": description, "quantity": quantity, "livemode": False, "metadata": {},
            "period": {"start": start, "end": end}, "discount_amounts": [], "discountable": True, "discounts": [],
            "pricing": {"type": "price_details", "price_details": {"price": price_id, "product": f"prod_{price_id}"},
                        "unit_amount_decimal": str(self._price(subscription, price_id)[0])},
            "parent": {"type": "subscription_item_details", "invoice_item_details": None,
                       "subscription_item_details": {"invoice_item": None, "proration": proration,
                                                     "proration_details": {"credited_items": None},
                                                     "subscription": subscription["id"],
                                                     "subscription_item": item_id}},
            "subtotal": amount, "taxes": [], "pretax_credit_amounts": [],
        }

    def _cycle_lines(self, subscription: dict, items: list[dict], start: int, end: int) -> list[dict]:
        lines = []
        for item in items:
            unit, name = self._price(subscription, item["price"]["id"])
            quantity = int(item["quantity"])
            lines.append(self._line(subscription, price_id=item["price"]["id"], quantity=quantity,
                                    amount=unit * quantity, start=start, end=end, item_id=item.get("id"),
                                    description=f"{quantity} × {name} (at ${unit / 100:.2f} / month)"))
        return lines

    def _proration_lines(self, subscription: dict, changes: list[dict], at: int) -> list[dict]:
        """Stripe's proration of item changes at `at`: the unused time of the old quantity credited, the
        remaining time of the new one charged, both to the end of the current period."""
        start, end = self._period(subscription)
        if end <= start or at >= end:
            return []
        share = (end - max(at, start)) / (end - start)
        lines = []
        for change in changes:
            current = next((i for i in subscription["items"]["data"] if i["id"] == change.get("id")), None)
            price_id = current["price"]["id"] if current else change.get("price") or ""
            unit, name = self._price(subscription, price_id)
            old = int(current["quantity"]) if current else 0
            new = 0 if str(change.get("deleted")) in ("true", "True") else int(change.get("quantity") or old or 1)
            if new == old:
                continue
            if old:
                lines.append(self._line(subscription, price_id=price_id, quantity=old, proration=True,
                                        amount=-round(unit * old * share), start=at, end=end,
                                        item_id=current["id"] if current else None,
                                        description=f"Unused time on {old} × {name}"))
            if new:
                lines.append(self._line(subscription, price_id=price_id, quantity=new, proration=True,
                                        amount=round(unit * new * share), start=at, end=end,
                                        item_id=current["id"] if current else None,
                                        description=f"Remaining time on {new} × {name}"))
        return lines

    def _invoice(self, subscription: dict, *, status: str, attempt_count: int = 1, lines: list[dict] | None = None,
                 billing_reason: str = "subscription_cycle", store: bool = True) -> dict:
        invoice = fixture("invoice")
        invoice_id = self.new_id("in") if store else f"upcoming_{subscription['id']}"
        start, end = self._period(subscription)
        if lines is None:
            lines = self._cycle_lines(subscription, subscription["items"]["data"], start, end)
        amount = sum(line["amount"] for line in lines)
        due = max(amount, 0)
        if store:
            self.invoice_numbers += 1
        invoice.update({
            "id": invoice_id, "customer": subscription["customer"], "status": status, "created": self.now(),
            "billing_reason": billing_reason, "amount_due": due, "subtotal": amount, "total": amount,
            "amount_paid": due if status == "paid" else 0, "amount_remaining": 0 if status == "paid" else due,
            "attempt_count": attempt_count, "attempted": status != "draft", "livemode": False, "currency": "usd",
            "number": f"FAKE-{self.invoice_numbers:04d}" if store else None,
            "hosted_invoice_url": f"{self.hosted_base}/invoice/{invoice_id}" if store else None,
            "invoice_pdf": f"{self.hosted_base}/invoice/{invoice_id}/pdf" if store else None,
            "period_start": start, "period_end": end, "next_payment_attempt": None,
            "parent": {"type": "subscription_details", "quote_details": None,
                       "subscription_details": {"metadata": subscription.get("metadata") or {},
                                                "subscription": subscription["id"]}},
        })
        invoice["lines"] = {"object": "list", "data": lines, "has_more": False,
                            "url": f"/v1/invoices/{invoice_id}/lines"}
        if store:
            self.invoices[invoice_id] = invoice
        return invoice

    def invoice_list(self, params: dict) -> dict:
        customer, subscription_id = params.get("customer"), params.get("subscription")
        limit = min(max(int(params.get("limit") or 10), 1), 100)
        found = [i for i in self.invoices.values()
                 if (not customer or i["customer"] == customer)
                 and (not subscription_id
                      or i["parent"]["subscription_details"]["subscription"] == subscription_id)]
        found.sort(key=lambda i: (i["created"], i["number"] or ""), reverse=True)
        return {"object": "list", "data": copy.deepcopy(found[:limit]), "has_more": len(found) > limit,
                "url": "/v1/invoices"}

    def invoice_preview(self, params: dict) -> dict:
        """POST /v1/invoices/create_preview for a subscription: its next renewal invoice, or with
        `subscription_details[items]` what a change would invoice (prorations)."""
        subscription = self._get(self.subscriptions, params.get("subscription") or "", "subscription")
        if params.get("customer") and params["customer"] != subscription["customer"]:
            raise FakeStripeError(400, "invalid_request_error", "The subscription is not the customer's.")
        if subscription["status"] == "canceled":
            raise FakeStripeError(400, "invalid_request_error", "No upcoming invoices for a canceled subscription.",
                                  "invoice_upcoming_none")
        details = params.get("subscription_details") or {}
        changes = details.get("items") or []
        behavior = details.get("proration_behavior") or "create_prorations"
        at = int(details.get("proration_date") or self.now())
        start, end = self._period(subscription)
        prorations = self._proration_lines(subscription, changes, at) if behavior != "none" else []
        if changes and behavior == "always_invoice":
            invoice = self._invoice(subscription, status="draft", lines=prorations, store=False,
                                    billing_reason="subscription_update")
            invoice["next_payment_attempt"] = at
        else:
            if subscription.get("cancel_at_period_end") and not changes:
                raise FakeStripeError(400, "invalid_request_error", "No upcoming invoices: the subscription ends "
                                      "at the end of its period.", "invoice_upcoming_none")
            items = copy.deepcopy(subscription["items"]["data"])
            for change in changes:
                current = next((i for i in items if i["id"] == change.get("id")), None)
                if current is not None and str(change.get("deleted")) in ("true", "True"):
                    items.remove(current)
                elif current is not None:
                    current["quantity"] = int(change.get("quantity") or current["quantity"])
                elif change.get("price"):
                    items.append({"id": None, "price": {"id": change["price"]},
                                  "quantity": int(change.get("quantity") or 1)})
            lines = prorations + self._cycle_lines(subscription, items, end, end + MONTH_SECONDS)
            invoice = self._invoice(subscription, status="draft", lines=lines, store=False)
            invoice.update({"next_payment_attempt": end, "period_start": start, "period_end": end})
        invoice["attempted"] = False
        return invoice

    def subscription_adopt(self, *, subscription_id: str, customer_id: str, items: list[tuple[str, int]],
                           period_start: int, period_end: int, status: str = "active",
                           cancel_at_period_end: bool = False, metadata: dict | None = None,
                           email: str | None = None) -> dict:
        """Know a subscription made elsewhere (the demo data, or before a restart of the offline demo),
        with a paid invoice for its current period."""
        with self.lock:
            if subscription_id in self.subscriptions:
                return self.subscriptions[subscription_id]
            if customer_id not in self.customers:
                customer = fixture("customer")
                customer.update({"id": customer_id, "email": email, "created": period_start, "metadata": {},
                                 "livemode": False})
                self.customers[customer_id] = customer
            subscription = fixture("subscription")
            subscription.update({
                "id": subscription_id, "customer": customer_id, "status": status, "created": period_start,
                "start_date": period_start, "billing_cycle_anchor": period_start, "cancel_at": None,
                "canceled_at": None, "ended_at": None, "cancel_at_period_end": cancel_at_period_end,
                "trial_start": None, "trial_end": None, "pending_update": None, "schedule": None, "livemode": False,
                "transfer_data": None, "metadata": metadata or {}, "next_pending_invoice_item_invoice": None,
                "billing_schedules": [],
            })
            subscription["items"] = {"object": "list", "data": [], "has_more": False,
                                     "url": f"/v1/subscription_items?subscription={subscription_id}"}
            for price_id, quantity in items:
                if quantity < 1:
                    continue
                item = self._item(subscription, price_id, quantity)
                item["current_period_start"], item["current_period_end"] = period_start, period_end
                subscription["items"]["data"].append(item)
            self.subscriptions[subscription_id] = subscription
            clock = self.clock
            self.clock = period_start
            try:
                invoice = self._invoice(subscription, status="paid")
            finally:
                self.clock = clock
            subscription["latest_invoice"] = invoice["id"]
            return subscription

    def invoice_payment_failed(self, subscription_id: str, *, attempt_count: int = 1,
                               invoice_id: str | None = None) -> list[dict]:
        """A renewal payment fails: the subscription goes past_due; returns Stripe's events."""
        with self.lock:
            subscription = self._get(self.subscriptions, subscription_id, "subscription")
            if invoice_id is None:
                invoice = self._invoice(subscription, status="open", attempt_count=attempt_count)
            else:
                invoice = self.invoices[invoice_id]
                invoice["attempt_count"] = attempt_count
            subscription["status"] = "past_due"
            subscription["latest_invoice"] = invoice["id"]
            return [
                self.event("invoice.payment_failed", invoice),
                self.event("customer.subscription.updated", self._public(subscription),
                           previous_attributes={"status": "active"}),
            ]

    def subscription_cancel_at_period_end(self, subscription_id: str) -> dict:
        with self.lock:
            subscription = self._get(self.subscriptions, subscription_id, "subscription")
            subscription["cancel_at_period_end"] = True
            return self.event("customer.subscription.updated", self._public(subscription),
                              previous_attributes={"cancel_at_period_end": False})

    def subscription_end(self, subscription_id: str) -> dict:
        """Stripe ends the subscription: at its period end when it was cancelled at period end (the
        event then carries that moment), otherwise now (an immediate cancellation)."""
        with self.lock:
            subscription = self._get(self.subscriptions, subscription_id, "subscription")
            ended = self.now()
            if subscription.get("cancel_at_period_end") and subscription["items"]["data"]:
                ended = max(ended, subscription["items"]["data"][0]["current_period_end"])
            subscription.update({"status": "canceled", "ended_at": ended, "canceled_at": subscription.get(
                "canceled_at") or self.now()})
            return self.event("customer.subscription.deleted", self._public(subscription), created=ended)

    def subscription_renew(self, subscription_id: str) -> list[dict]:
        """The paid period ends and Stripe renews the subscription for another month at its current
        items: the fake's clock moves to the period end; returns Stripe's events (updated, invoice.paid)."""
        with self.lock:
            subscription = self._get(self.subscriptions, subscription_id, "subscription")
            end = subscription["items"]["data"][0]["current_period_end"]
            self.clock = end
            previous = {"items": copy.deepcopy(subscription["items"])}
            for item in subscription["items"]["data"]:
                item["current_period_start"], item["current_period_end"] = end, end + MONTH_SECONDS
            invoice = self._invoice(subscription, status="paid")
            subscription["latest_invoice"] = invoice["id"]
            return [
                self.event("customer.subscription.updated", self._public(subscription),
                           previous_attributes=previous),
                self.event("invoice.paid", invoice),
            ]

    def subscription_updated_event(self, subscription_id: str, **kwargs) -> dict:
        with self.lock:
            subscription = self._get(self.subscriptions, subscription_id, "subscription")
            return self.event("customer.subscription.updated", self._public(subscription), **kwargs)
