"""Small template helpers for the customer web app: billing links, money, percentages."""

from django import template
from django.urls import NoReverseMatch, reverse

register = template.Library()

# The billing pages are another module's; their paths are the contract, their names may arrive later.
_BILLING_PATHS = {"overview": "", "checkout": "checkout/", "portal": "portal/"}


@register.simple_tag
def billing_url(workspace_id: int, name: str) -> str:
    try:
        return reverse(f"billing:{name}", kwargs={"workspace_id": workspace_id})
    except NoReverseMatch:
        return f"/w/{workspace_id}/billing/{_BILLING_PATHS[name]}"


@register.filter
def money(cents: int | None, currency: str = "usd") -> str:
    cents = cents or 0
    sign = "−" if cents < 0 else ""  # a credit: "−$14.50"
    symbol = {"usd": "$", "eur": "€", "gbp": "£"}.get((currency or "").lower(), "")
    amount = f"{abs(cents) / 100:,.2f}".removesuffix(".00")
    return f"{sign}{symbol}{amount}" if symbol else f"{sign}{amount} {currency.upper()}"


@register.filter
def percent_of(part: int, whole: int) -> int:
    """Whole percent of part in whole, floored, 0 when whole is 0."""
    if not whole:
        return 0
    return min(100, (100 * (part or 0)) // whole)


@register.simple_tag
def optional_url(name: str, workspace_id: int) -> str:
    """A workspace page's URL, or "" while the module that serves it is not installed."""
    try:
        return reverse(name, kwargs={"workspace_id": workspace_id})
    except NoReverseMatch:
        return ""


@register.filter
def initials(value: object) -> str:
    text = str(value or "").lstrip("@").strip()
    parts = [p for p in text.replace(".", " ").replace("_", " ").split() if p]
    if not parts:
        return "?"
    return (parts[0][0] + (parts[1][0] if len(parts) > 1 else "")).upper()


@register.filter
def widget(field) -> str:
    """The field's input, tied to its help text and error for screen readers (aria-describedby)."""
    described = []
    attrs = {}
    if field.errors:
        attrs["aria-invalid"] = "true"
        described.append(f"{field.auto_id}_error")
    if field.help_text:
        described.append(f"{field.auto_id}_helptext")
    if described:
        attrs["aria-describedby"] = " ".join(described)
    return field.as_widget(attrs=attrs)
