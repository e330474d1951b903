"""Billing months: calendar months in BILLING_TIME_ZONE, always taken from the server clock."""

import datetime
import zoneinfo

from django.conf import settings
from django.utils import timezone


def billing_zone() -> zoneinfo.ZoneInfo:
    return zoneinfo.ZoneInfo(settings.BILLING_TIME_ZONE)


def month_of(moment: datetime.datetime | None = None) -> datetime.date:
    """First day of the billing month containing `moment` (default: now)."""
    moment = moment or timezone.now()
    local = moment.astimezone(billing_zone())
    return local.date().replace(day=1)


def next_month(month: datetime.date) -> datetime.date:
    return (month.replace(day=28) + datetime.timedelta(days=4)).replace(day=1)


def previous_month(month: datetime.date) -> datetime.date:
    return (month.replace(day=1) - datetime.timedelta(days=1)).replace(day=1)


def month_start(month: datetime.date) -> datetime.datetime:
    """The first instant of a billing month, as an aware datetime."""
    return datetime.datetime.combine(month.replace(day=1), datetime.time.min, tzinfo=billing_zone())


def month_end(month: datetime.date) -> datetime.datetime:
    """The first instant of the following month: the reset moment of `month`."""
    return month_start(next_month(month))


def months_between(first: datetime.date, last: datetime.date) -> list[datetime.date]:
    """Every month from `first` to `last`, both included."""
    months = []
    month = first.replace(day=1)
    while month <= last:
        months.append(month)
        month = next_month(month)
    return months
