"""A comment-triggered scenario's private reply past the account's hourly rate (META_PRIVATE_REPLY_RATE)
waits its turn and is sent then."""

import pytest

from automations import tasks
from automations.models import ScenarioRun, ScenarioStepLog
from automations.services import scenario_create
from contacts import pacing
from contacts.models import Message
from tests.contacts.test_graph_backend import FakeGraph
from tests.factories import ContactFactory, connect_instagram

pytestmark = pytest.mark.django_db


def test_private_replies_past_the_hours_rate_wait_their_turn_and_are_sent_then(
        settings, workspace, fire, monkeypatch, django_capture_on_commit_callbacks):
    graph = FakeGraph()
    graph.thread.start()
    try:
        settings.INSTAGRAM_SEND_BACKEND = "graph"
        settings.META_GRAPH_API_BASE = graph.base_url
        settings.META_PRIVATE_REPLY_RATE = 2
        connect_instagram(workspace)
        continued = []
        monkeypatch.setattr(tasks.scenario_run_continue, "apply_async",
                            lambda args, countdown: continued.append((args, countdown)))
        scenario_create(workspace=workspace, name="Giveaway", trigger_type="comment", trigger_config={},
                        steps=[{"type": "send_message", "text": "Check your DMs!"}])
        contacts = ContactFactory.create_batch(3, workspace=workspace, source="organic_post")

        for n, contact in enumerate(contacts):
            fire(contact, type="comment", text="me!", meta_id=f"c.{n}", comment_id=f"c.{n}", media_id="m.1")

        replied = Message.objects.filter(direction="out", status="sent").exclude(reply_to_comment_id="")
        assert replied.count() == 2 and len(graph.requests) == 2
        late = ScenarioRun.objects.get(contact=contacts[2])
        assert (late.status, late.next_step) == (ScenarioRun.Status.WAITING, 0)
        assert ScenarioStepLog.objects.get(run=late).outcome == "paced"
        [(args, countdown)] = continued
        assert args == [late.pk, 0] and 0 < countdown <= 3601  # the hour, and a second of margin

        pacing.pacing_reset()  # the hour has passed
        with django_capture_on_commit_callbacks(execute=True):
            tasks.scenario_run_continue.run(*args)

        late.refresh_from_db()
        assert late.status == ScenarioRun.Status.COMPLETED
        assert replied.count() == 3
        assert graph.requests[-1]["json"]["recipient"] == {"comment_id": "c.2"}
    finally:
        graph.server.shutdown()
        graph.server.server_close()
