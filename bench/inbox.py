"""Benchmark: the inbox's conversations list on a workspace of 1,000,000 contacts and 10,000,000 messages.

Seeded in SQL (generate_series INSERT … SELECT): every contact has messages, in and out, spread over
the last week; the bench member has read 30 % of the conversations; 1 % of the contacts have a paused
automation. 9/10 of the messages go in with the activity trigger switched off; the last round, one
message for each contact, goes in with it on, as production writes (it writes the conversations).

Then `GET /api/v1/workspaces/{id}/conversations/` (first page, 50 rows) is requested through Django's
test client (token authentication, the whole middleware, selector, serializer and ETag stack, no network)
and timed, with the same-run reference: the raw indexed SELECT of the same 50 contact ids over psycopg.
Also timed: the `waiting=true` and `unread=true` filters, a poll answered 304 (If-None-Match), and a
poll with `since` that has nothing new. The query count per request is counted on this workspace and
on a workspace of 3 conversations: it must not grow with size.

    BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/inro_bench_inbox .venv/bin/python bench/inbox.py

Sizes: BENCH_INBOX_CONTACTS (default 1,000,000), BENCH_INBOX_MESSAGES (default 10,000,000, a whole
multiple of the contacts), BENCH_INBOX_RUNS (default 30); BENCH_INBOX_WORKSPACE=<id> measures a
workspace an earlier run seeded, without seeding again.
"""

import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (
    Row,
    django_setup,
    emit,
    integer,
    libpq_dsn,
    median,
    ms,
    new_workspace,
    percentile,
)

CONTACTS = integer("BENCH_INBOX_CONTACTS", 1_000_000)
MESSAGES = integer("BENCH_INBOX_MESSAGES", 10_000_000)
RUNS = integer("BENCH_INBOX_RUNS", 30)
PAGE = 50
TARGET_MS = 100.0


def seed(workspace_id: int, membership_id: int) -> None:
    import psycopg

    rounds = MESSAGES // CONTACTS
    if rounds * CONTACTS != MESSAGES or rounds < 2:
        sys.exit("BENCH_INBOX_MESSAGES must be a whole multiple (2 or more) of BENCH_INBOX_CONTACTS")
    sources = ["dm", "organic_post", "paid_ad", "collaboration", "story"]
    t0 = time.perf_counter()
    with psycopg.connect(libpq_dsn(), autocommit=True) as conn:
        conn.execute("SET synchronous_commit = off")
        conn.execute(
            "INSERT INTO contacts_contact (workspace_id, igsid, username, name, source, captured_at,"
            " last_inbound_at, email, phone, custom_fields, biography)"
            " SELECT %s, 'inbox-' || %s || '-' || g, 'lead_' || g, 'Lead ' || g, (%s::text[])[1 + g %% 5],"
            " now() - interval '8 days', NULL, '', '', '{}', ''"
            " FROM generate_series(1, %s) AS g ORDER BY g",
            [workspace_id, workspace_id, sources, CONTACTS],
        )
        first = conn.execute("SELECT min(id) FROM contacts_contact WHERE workspace_id = %s",
                             [workspace_id]).fetchone()[0]
        print(f"   {CONTACTS:,} contacts in {time.perf_counter() - t0:.0f} s", flush=True)
        # Message g (1..MESSAGES) belongs to contact (g - 1) % CONTACTS, round r = (g - 1) / CONTACTS; times
        # grow with g over the last 7 days; the person and the brand take turns, each contact starting
        # with its own side, so about half the conversations end with the person (waiting).
        span = 7 * 24 * 3600.0 / MESSAGES

        def insert(low: int, high: int) -> None:
            conn.execute(
                "INSERT INTO contacts_message (workspace_id, contact_id, direction, origin, status, text,"
                " reply_to_comment_id, automation_ref, sent_by_id, meta_mid, idempotency_key, error,"
                " created_at, sent_at)"
                " SELECT %(ws)s, %(first)s::bigint + (g - 1) %% %(n)s::bigint, d.direction,"
                " CASE d.direction WHEN 'in' THEN 'contact' ELSE 'automated' END,"
                " CASE d.direction WHEN 'in' THEN 'received' ELSE 'sent' END,"
                " 'message number ' || g, '', '', NULL, '', '', '',"
                " now() - ((%(total)s::bigint - g) * %(span)s::float8) * interval '1 second', NULL"
                " FROM generate_series(%(low)s::bigint, %(high)s::bigint) AS g"
                " CROSS JOIN LATERAL (SELECT CASE WHEN ((g - 1) / %(n)s::bigint + (g - 1) %% %(n)s::bigint) %% 2 = 0"
                " THEN 'in' ELSE 'out' END AS direction) AS d ORDER BY g",
                {"ws": workspace_id, "first": first, "n": CONTACTS, "total": MESSAGES, "span": span,
                 "low": low, "high": high},
            )

        t1 = time.perf_counter()
        conn.execute("ALTER TABLE contacts_message DISABLE TRIGGER contacts_message_activity")
        try:
            step = CONTACTS
            for low in range(1, MESSAGES - CONTACTS + 1, step):
                insert(low, min(low + step - 1, MESSAGES - CONTACTS))
                print(f"   messages up to {min(low + step - 1, MESSAGES - CONTACTS):,}"
                      f" ({time.perf_counter() - t1:.0f} s)", flush=True)
        finally:
            conn.execute("ALTER TABLE contacts_message ENABLE TRIGGER contacts_message_activity")
        # The contacts' last inbound time, as intake keeps it (the reply window reads it).
        conn.execute(
            "UPDATE contacts_contact c SET last_inbound_at = m.created_at FROM ("
            " SELECT DISTINCT ON (contact_id) contact_id, created_at FROM contacts_message"
            " WHERE workspace_id = %s AND direction = 'in' AND created_at >= now() - interval '2 days'"
            " ORDER BY contact_id, created_at DESC) AS m WHERE c.id = m.contact_id",
            [workspace_id],
        )
        t2 = time.perf_counter()
        insert(MESSAGES - CONTACTS + 1, MESSAGES)  # the last round: the trigger keeps last activity
        print(f"   last {CONTACTS:,} messages with the activity trigger on: {time.perf_counter() - t2:.0f} s",
              flush=True)
        # Fresh statistics first: without them the planner expects one conversation in this workspace
        # and joins the 1,000,000 by scanning the inbound index once each (hours instead of seconds).
        conn.execute("ANALYZE contacts_contact, contacts_message, contacts_conversation")
        conn.execute(
            "UPDATE contacts_contact c SET last_inbound_at = m.created_at FROM contacts_conversation v"
            " JOIN contacts_message m ON m.id = v.last_message_id"
            " WHERE v.contact_id = c.id AND v.workspace_id = %s AND m.direction = 'in'", [workspace_id])
        # The bench member has read 30 % of the conversations up to their newest message from the person.
        conn.execute(
            "INSERT INTO contacts_conversationread (membership_id, contact_id, last_read_message_id, last_read_at,"
            " updated_at) SELECT %s, v.contact_id, v.last_message_id, now(), now() FROM contacts_conversation v"
            " WHERE v.workspace_id = %s AND v.contact_id %% 10 < 3",
            [membership_id, workspace_id],
        )
        conn.execute(
            "INSERT INTO automations_pausedaction (workspace_id, contact_id, kind, automation_ref, action_type,"
            " payload, dedupe_key, created_at, status, reason) SELECT %s, c.id, 'campaign', 'campaign:1',"
            " 'campaign_message', '{}', 'campaign:1:contact:' || c.id, now(), 'waiting', '' FROM contacts_contact c"
            " WHERE c.workspace_id = %s AND c.id %% 100 = 7",
            [workspace_id, workspace_id],
        )
        conn.execute("VACUUM ANALYZE contacts_contact")
        conn.execute("VACUUM ANALYZE contacts_message")
        conn.execute("VACUUM ANALYZE contacts_conversation")
        conn.execute("VACUUM ANALYZE contacts_conversationread")
        conn.execute("VACUUM ANALYZE automations_pausedaction")
    print(f"   seeded in {time.perf_counter() - t0:.0f} s", flush=True)


def timed(call, runs: int = RUNS) -> list[float]:
    for _ in range(3):
        call()
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        call()
        samples.append(time.perf_counter() - started)
    return samples


def count_queries(call) -> int:
    from django.db import connection

    seen = []

    def counter(execute, sql, *args):
        seen.append(sql)
        return execute(sql, *args)

    with connection.execute_wrapper(counter):
        call()
    return len(seen)


def main() -> None:
    django_setup(migrate=True)
    import psycopg
    from django.test.utils import setup_test_environment
    from rest_framework.test import APIClient

    from accounts.models import Membership, User
    from accounts.services import api_token_create
    from contacts.models import Contact, Message

    setup_test_environment()
    os.environ.setdefault("ALLOWED_HOSTS", "testserver")
    reuse = os.environ.get("BENCH_INBOX_WORKSPACE")
    if reuse:  # measure again on a workspace seeded by an earlier run (its bench member's view)
        membership = Membership.objects.select_related("workspace", "user").get(
            workspace_id=int(reuse), user__email=f"inbox-{reuse}@bench.test")
        workspace, user = membership.workspace, membership.user
    else:
        workspace = new_workspace("inbox")
        user = User.objects.create_user(email=f"inbox-{workspace.pk}@bench.test")
        membership = Membership.objects.create(user=user, workspace=workspace, role=Membership.Role.MEMBER)
        print(f"Seeding {CONTACTS:,} contacts and {MESSAGES:,} messages...", flush=True)
        seed(workspace.pk, membership.pk)
    print(f"   workspace {workspace.pk} (BENCH_INBOX_WORKSPACE={workspace.pk} measures it again)", flush=True)

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {api_token_create(user=user)[1]}")
    url = f"/api/v1/workspaces/{workspace.pk}/conversations/"

    def get(query: str = "", **headers):
        response = client.get(url + query, **headers)
        assert response.status_code in (200, 304), response.content[:300]
        return response

    first = get()
    results = first.json()["results"]
    assert len(results) == PAGE, len(results)
    etag, since = first["ETag"], first.json()["since"]

    with psycopg.connect(libpq_dsn(), autocommit=True) as raw:
        page_sql = ("SELECT contact_id FROM contacts_conversation WHERE workspace_id = %s"
                    " ORDER BY last_activity_at DESC, contact_id DESC LIMIT 50")
        reference_ids = [r[0] for r in raw.execute(page_sql, [workspace.pk]).fetchall()]
        assert reference_ids == [row["contact"]["id"] for row in results]
        reference = timed(lambda: raw.execute(page_sql, [workspace.pk]).fetchall())

    list_times = timed(get)
    waiting = timed(lambda: get("?waiting=true"))
    unread = timed(lambda: get("?unread=true"))
    limited = timed(lambda: get("?limited=true"))
    not_modified = timed(lambda: get(HTTP_IF_NONE_MATCH=etag))
    assert get(HTTP_IF_NONE_MATCH=etag).status_code == 304
    nothing_new = timed(lambda: get(f"?since={since}"))
    # The web page's poll: the HTML fragment, 200 the first time, then 304 while nothing changed.
    from django.test import Client

    web = Client()
    web.force_login(user)
    live = f"/w/{workspace.pk}/inbox/live/"
    web_page = timed(lambda: web.get(live))
    live_etag = web.get(live)["ETag"]
    assert web.get(live, HTTP_IF_NONE_MATCH=live_etag).status_code == 304
    web_poll = timed(lambda: web.get(live, HTTP_IF_NONE_MATCH=live_etag))
    # The API's floor on this machine right now: the cheapest authenticated request (who am I).
    floor = timed(lambda: client.get("/api/v1/me/"))
    assert get(f"?since={since}").json()["results"] == []

    queries_big = count_queries(get)
    small = new_workspace("inbox-small")
    small_member = Membership.objects.create(user=user, workspace=small, role=Membership.Role.MEMBER)
    for i in range(3):
        contact = Contact.objects.create(workspace=small, igsid=f"small-{small.pk}-{i}", source="dm")
        Message.objects.create(workspace=small, contact=contact, direction="in", origin="contact",
                               status="received", text="hi")
    small_url = f"/api/v1/workspaces/{small_member.workspace_id}/conversations/"
    queries_small = count_queries(lambda: client.get(small_url))

    ref = median(reference)
    rows = []

    def row(label: str, samples: list[float], target: str, ok: bool | None) -> Row:
        figure = median(samples)
        return Row(scenario=f"inbox: {label} ({CONTACTS:,} contacts, {MESSAGES:,} messages)",
                   figure=f"{ms(figure)} median, p95 {ms(percentile(samples, 95))}",
                   reference=f"{ms(ref)} raw indexed SELECT of the page's ids",
                   ratio=f"{ref / figure:.3f}" if figure else "—", target=target, met=Row.verdict(ok))

    rows.append(row("conversations list, first page", list_times, f"median < {TARGET_MS:.0f} ms",
                    median(list_times) * 1000 < TARGET_MS))
    rows.append(row("conversations, waiting=true", waiting, "—", None))
    rows.append(row("conversations, unread=true", unread, "—", None))
    rows.append(row("conversations, limited=true (1 % of them)", limited, "—", None))
    rows.append(row("poll with If-None-Match, 304", not_modified, "—", None))
    rows.append(row("poll with since, nothing new", nothing_new, "—", None))
    rows.append(row("web page's live fragment, 200", web_page, "—", None))
    rows.append(row("web page's poll, 304", web_poll, "—", None))
    rows.append(Row(scenario="inbox: API floor, GET /api/v1/me/ (context)", figure=f"{ms(median(floor))} median",
                    reference="—", ratio="—", target="—", met="—"))
    rows.append(Row(scenario="inbox: queries per list request", figure=f"{queries_big} at {CONTACTS:,} contacts",
                    reference=f"{queries_small} at 3 conversations", ratio="—", target="the same",
                    met=Row.verdict(queries_big == queries_small)))
    emit(rows)
    if median(list_times) * 1000 >= TARGET_MS or queries_big != queries_small:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
