"""Schemathesis (a fuzzer nobody here wrote) against a live server with a seeded workspace and a token.

It generates requests from /api/schema/ for every operation, in all four phases (the schema's
examples, coverage of every boundary and wrong type, fuzzing, and stateful sequences that follow the
links it infers between operations), and runs every check: no 5xx, every status and content type and
header documented, every body as documented, schema-valid input accepted and schema-invalid input
refused, unsupported methods a 405, authentication not ignored, and the rest of `--checks all`.
Zero failures. At least 50 examples per operation (SCHEMATHESIS_MAX_EXAMPLES) and a fixed seed
(SCHEMATHESIS_SEED) keep a run reproducible; logging out (DELETE /auth/token/, DELETE
/auth/devices/{id}/) is left out because it would revoke the token the run uses. Stripe is the local
fake (checkout and portal reach it). Four fuzzer workers (SCHEMATHESIS_WORKERS) keep both cores busy:
the requests wait on the database as much as on Python.
"""

import logging
import os
import re
import resource
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
from django.db import connections
from django.db.backends.postgresql.base import DatabaseWrapper

from accounts.services import api_token_create
from automations.models import Integration
from automations.services import campaign_create, scenario_create, segment_create
from billing.activation import activate_many
from contacts.models import Message
from inro.api import UserThrottle
from tests.factories import ContactFactory, FolderFactory, MembershipFactory, WorkspaceFactory

CHECKS = "all"


def _cpu_seconds() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def seed(workspace, n_contacts=12):
    """Contacts, folders, tags, activations, messages, a segment, campaigns, a scenario and an integration."""
    contacts = ContactFactory.create_batch(n_contacts, workspace=workspace)
    folders = [FolderFactory(workspace=workspace, name=name) for name in ("VIP", "Wholesale", "Leads")]
    for folder in folders[:2]:
        for contact in contacts[:4]:
            folder.memberships.create(contact=contact)
    contacts[0].tags.create(workspace=workspace, name="vip")
    activate_many(workspace, contacts[:6], kind="campaign", ref="campaign:1")
    for contact in contacts[:3]:
        Message.objects.create(workspace=workspace, contact=contact, direction="in", origin="contact",
                               status="received", text="Hi! Price?")
    segment = segment_create(workspace=workspace, name="DM leads", rules={"sources": ["dm"]})
    integration = Integration.objects.create(workspace=workspace, name="CRM", url="http://127.0.0.1:9/hook")
    campaigns = [campaign_create(workspace=workspace, name=f"Promo {n}", text="Hi") for n in range(3)]
    campaigns.append(campaign_create(workspace=workspace, name="Fans", text="Hi", audience="segment",
                                     segment=segment))
    scenario = scenario_create(workspace=workspace, name="Price", trigger_type="dm_keyword",
                               trigger_config={"keywords": ["price"]},
                               steps=[{"type": "send_message", "text": "Our prices: ..."}])
    return contacts, folders, [segment], campaigns, [scenario], [integration]


@contextmanager
def _pooled_connections():
    """The live server answers each request in a new thread, and each thread would open its own PostgreSQL
    connection (about 5 ms here, on every one of some 20,000 requests): while the fuzzer runs, request
    threads take their connection from a pool instead (Django's psycopg pool), as a production server
    with persistent connections would. The pool is closed and the setting put back before the test's
    own connection is closed."""
    options = connections.settings["default"]["OPTIONS"]
    options["pool"] = {"min_size": 2, "max_size": 8}
    try:
        yield
    finally:
        del options["pool"]
        pool = DatabaseWrapper._connection_pools.pop("default", None)
        if pool is not None:
            pool.close()


@pytest.mark.django_db(transaction=True)
def test_schemathesis_finds_no_server_error_and_no_schema_violation(live_server, tmp_path, monkeypatch, fake_stripe):
    # Thousands of 4xx answers, each logged by django.request: kept out of the run's time.
    monkeypatch.setattr(logging.getLogger("django.request"), "level", logging.ERROR)
    workspace, elsewhere = WorkspaceFactory(), WorkspaceFactory()
    owner = MembershipFactory(workspace=workspace).user
    mine, theirs = seed(workspace), seed(elsewhere, n_contacts=2)
    _, key = api_token_create(user=owner, name="schemathesis")
    # The fuzzer sends hundreds of requests a minute; the per-user rate is not what is tested here.
    monkeypatch.setattr(UserThrottle, "THROTTLE_RATES", {**UserThrottle.THROTTLE_RATES, "user": "100000/min"},
                        raising=False)

    def ids(objects):
        return ", ".join(str(o.pk) for o in objects)

    config = tmp_path / "schemathesis.toml"
    # Path ids mostly come from the seeded data (so requests reach the logic), sometimes anything.
    config.write_text(f"""
[dictionaries.workspace_ids]
values = [{workspace.pk}, {workspace.pk}, {workspace.pk}, {elsewhere.pk}]
[parameters]
"path.workspace_id" = {{ dictionary = "workspace_ids", probability = 0.9 }}
""" + "".join(f"""
[dictionaries.{name}_ids]
values = [{ids(mine[index] + theirs[index])}]
[parameters."path.{name}_id"]
dictionary = "{name}_ids"
probability = 0.8
""" for index, name in enumerate(("contact", "folder", "segment", "campaign", "scenario", "integration"))) + f"""
# Ids inside request bodies name objects of the workspace (a missing one is answered 404, about the body;
# after a POST, the stateful phase would take that 404 for the created resource gone missing). Unit tests
# cover the missing ones.
[dictionaries.own_contact_ids]
values = [{ids(mine[0])}]
[dictionaries.own_folder_ids]
values = [{ids(mine[1])}]
[dictionaries.own_segment_ids]
values = [{ids(mine[2])}]
[dictionaries.own_integration_ids]
values = [{ids(mine[5])}]
[parameters."body.contact_ids[*]"]
dictionary = "own_contact_ids"
[parameters."body.folder"]
dictionary = "own_folder_ids"
[parameters."body.segment"]
dictionary = "own_segment_ids"
[parameters."body.trigger.segment_id"]
dictionary = "own_segment_ids"
[parameters."body.steps[*].segment_id"]
dictionary = "own_segment_ids"
[parameters."body.steps[*].integration_id"]
dictionary = "own_integration_ids"

# An integration's URL is accepted only when its host resolves, now, to public addresses: no schema
# can state that (and this machine resolves nothing), so a schema-valid URL may be refused (400, saying
# why). For these two operations only, that 400 is an expected answer to schema-valid data.
[[operations]]
include-operation-id = ["integrations_create", "integrations_partial_update"]
[operations.checks.positive_data_acceptance]
expected-statuses = ["2xx", "3xx", "400", "401", "403", "404", "409", "429", "5xx"]
""")
    command = [
        str(Path(sys.executable).parent / "schemathesis"), "--config-file", str(config),
        "run", f"{live_server.url}/api/schema/",
        "--header", f"Authorization: Token {key}",
        "--checks", CHECKS,
        "--max-examples", os.environ.get("SCHEMATHESIS_MAX_EXAMPLES", "50"),
        "--seed", os.environ.get("SCHEMATHESIS_SEED", "20261126"),
        "--exclude-operation-id", "auth_token_destroy", "--exclude-operation-id", "auth_devices_destroy",
        "--generation-database", "none",
        "--phases", "examples,coverage,fuzzing,stateful",
        "--workers", os.environ.get("SCHEMATHESIS_WORKERS", "4"),
        "--no-color",
    ]

    started, cpu_before = time.monotonic(), _cpu_seconds()
    with _pooled_connections():
        run = subprocess.run(command, capture_output=True, text=True, timeout=900, cwd=tmp_path)  # noqa: S603
    wall, cpu = time.monotonic() - started, _cpu_seconds() - cpu_before

    output = run.stdout + run.stderr
    counts = re.search(r"(\d+) generated, (\d+) passed", output)
    print(output[-3000:])  # the summary, shown with -s or on failure
    # CPU seconds of the fuzzer and of this process's live server: what the run costs a quiet machine.
    print(f"schemathesis: {wall:.0f} s wall, {cpu:.0f} CPU seconds (fuzzer and server)")
    assert run.returncode == 0, output[-20000:]
    assert counts is not None, output[-5000:]
    generated, passed = int(counts.group(1)), int(counts.group(2))
    assert generated >= 1000  # 54 operations, up to 50 fuzzed examples each, and the coverage phase
    assert passed == generated
    assert "Stateful" in output
