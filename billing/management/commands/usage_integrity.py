"""`manage.py usage_integrity [--fix] [--month YYYY-MM]`: compare usage counters with the ledger."""

import datetime

from django.core.management.base import BaseCommand, CommandError

from billing.integrity import usage_drift, usage_drift_repair


class Command(BaseCommand):
    help = "Report (and with --fix, repair) drift between monthly usage counters and activation records."

    def add_arguments(self, parser):
        parser.add_argument("--fix", action="store_true", help="Rewrite drifting counters from the ledger.")
        parser.add_argument("--month", help="Only this month (YYYY-MM).")

    def handle(self, *args, fix: bool, month: str | None, **options):
        month_date = None
        if month:
            try:
                month_date = datetime.datetime.strptime(month, "%Y-%m").date()  # noqa: DTZ007 - a date, no time
            except ValueError:
                raise CommandError(f"--month must look like 2026-11, not {month!r}.") from None
        drift = usage_drift(month=month_date)
        for item in drift:
            if item.what == "breakdown":
                self.stdout.write(
                    f"drift workspace={item.workspace_id} month={item.month:%Y-%m} "
                    "per-day or per-kind counters differ from the records"
                )
                continue
            if item.what == "reserved":
                self.stdout.write(
                    f"drift workspace={item.workspace_id} month={item.month:%Y-%m} "
                    f"in_flight_counter={item.counter} reservations={item.records} quota={item.quota}"
                )
                continue
            self.stdout.write(
                f"drift workspace={item.workspace_id} month={item.month:%Y-%m} "
                f"counter={item.counter} records={item.records} quota={item.quota}"
            )
        if not drift:
            self.stdout.write(self.style.SUCCESS("No drift: every counter equals its activation records."))
            return
        if fix:
            repaired = usage_drift_repair(drift=drift)
            self.stdout.write(self.style.WARNING(f"Repaired {repaired} usage rows from the ledger."))
        else:
            self.stdout.write(self.style.ERROR(f"{len(drift)} usage rows drift; run with --fix to repair."))
            raise SystemExit(1)
