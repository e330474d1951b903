"""The bulk gate looks up a batch's ids one index probe each, whatever the statistics know.

A workspace that is new, or has grown since the last ANALYZE, is estimated at about one row: the
planner once answered "is this contact active this month?" through (workspace, month, activated_at)
on the workspace alone, filtering all of that workspace's records for every id of the batch (a
campaign's second batch of 5,000 took over 20 s instead of 30 ms in `make bench`).
"""

import pytest
from django.db import connection, transaction

from billing.activation import _ONE_CONTACT, _ONE_RECORD, activate_many
from billing.models import AutomationKind
from billing.months import month_of
from tests.factories import ContactFactory, WorkspaceFactory

pytestmark = [pytest.mark.django_db(transaction=True)]


def _plan(sql: str, params: list) -> str:
    """The plan as for a large table: a few hundred test rows would rightly be read sequentially."""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("EXPLAIN " + sql, params)
        return "\n".join(row[0] for row in cursor.fetchall())


def test_a_workspace_unknown_to_the_statistics_is_probed_by_contact_not_scanned():
    known = WorkspaceFactory()
    activate_many(known, [c.pk for c in ContactFactory.create_batch(100, workspace=known)],
                  kind=AutomationKind.CAMPAIGN)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE billing_activationrecord")
        cursor.execute("ANALYZE contacts_contact")
    # Created after the ANALYZE: the statistics have never seen this workspace, yet it is active.
    grown = WorkspaceFactory()
    ids = [c.pk for c in ContactFactory.create_batch(80, workspace=grown)]
    activate_many(grown, ids[:60], kind=AutomationKind.CAMPAIGN)

    lookup = (
        "SELECT t.id, c.id IS NULL, r.contact_id IS NOT NULL FROM unnest(%s::bigint[]) AS t(id)"  # noqa: S608
        f" LEFT JOIN LATERAL ({_ONE_CONTACT}) c ON true LEFT JOIN LATERAL ({_ONE_RECORD}) r ON true"
    )
    plan = _plan(lookup, [ids, grown.pk, grown.pk, month_of()])

    assert "activation_ws_month_at" not in plan, plan
    assert "Index Cond: (contact_id = t.id)" in plan, plan
    assert "Index Cond: (id = t.id)" in plan, plan

    # And the answer is right: the 60 activated are found active, the other 20 are not.
    result = activate_many(grown, ids, kind=AutomationKind.CAMPAIGN)
    assert sorted(result.newly_activated) == sorted(ids[60:])
