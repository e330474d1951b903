"""Chart labels: axis numbers short enough for the chart's margin ("5k", "1.5M")."""

from django import template

register = template.Library()


@register.filter
def compact(value: int | float | None) -> str:
    value = value or 0
    for limit, suffix in ((1_000_000, "M"), (1_000, "k")):
        if abs(value) >= limit:
            divisor = 1_000_000 if suffix == "M" else 1_000
            return f"{value / divisor:,.1f}".removesuffix(".0") + suffix
    return f"{int(value):,}"
