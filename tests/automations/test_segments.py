"""Segments: rules compiled to SQL; counting is free, a segmentation run goes through the gate."""

import datetime

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from automations.models import PausedAction, SegmentMembership
from automations.selectors import segment_list
from automations.services import segment_create, segment_run, segment_size
from automations.services.segments import segment_matches
from billing.activation import activate_many, usage
from billing.models import ActivationRecord
from billing.services import bonus_grant
from contacts.models import Tag
from inro.errors import ApplicationError
from tests.factories import ContactFactory

pytestmark = pytest.mark.django_db


def tagged(contact, *names):
    for name in names:
        contact.tags.add(Tag.objects.get_or_create(workspace=contact.workspace, name=name)[0])
    return contact


def test_rules_select_in_sql(free_workspace):
    now = datetime.datetime(2026, 11, 20, 12, 0, tzinfo=datetime.UTC)
    ws = free_workspace
    a = tagged(ContactFactory(workspace=ws, source="story", captured_at=now, custom_fields={"city": "Lyon"}), "vip")
    b = tagged(ContactFactory(workspace=ws, source="story", captured_at=now - datetime.timedelta(days=40)), "vip")
    c = tagged(ContactFactory(workspace=ws, source="dm", captured_at=now, custom_fields={"city": "Lyon"}), "vip", "x")
    d = ContactFactory(workspace=ws, source="story", captured_at=now, custom_fields={"city": "Paris"})
    activate_many(ws, [c], kind="campaign")

    def pick(rules):
        segment = segment_create(workspace=ws, name=f"s{len(segment_list(workspace=ws))}", rules=rules)
        with CaptureQueriesContext(connection) as queries:
            ids = set(segment_matches(segment=segment).values_list("id", flat=True))
        assert len(queries) == 1  # one SQL query, no filtering in Python
        return ids

    assert pick({"sources": ["story"]}) == {a.pk, b.pk, d.pk}
    assert pick({"tags_any": ["VIP"], "tags_none": ["x"]}) == {a.pk, b.pk}
    assert pick({"tags_all": ["vip", "x"]}) == {c.pk}
    assert pick({"captured_after": (now - datetime.timedelta(days=1)).isoformat(), "sources": ["story"]}) == {
        a.pk, d.pk}
    assert pick({"custom_fields": {"city": "Lyon"}}) == {a.pk, c.pk}
    assert pick({"activated_this_month": True}) == {c.pk}
    assert pick({"activated_this_month": False, "custom_fields": {"city": "Lyon"}}) == {a.pk}
    assert pick({}) == {a.pk, b.pk, c.pk, d.pk}


@pytest.mark.parametrize(
    "rules",
    [
        {"sources": ["tiktok"]},
        {"tags_any": []},
        {"captured_after": "yesterday"},
        {"captured_after": "2026-11-01T00:00:00"},  # no time zone
        {"custom_fields": {"bad key": 1}},
        {"activated_this_month": "yes"},
        {"colour": "blue"},
        ["sources"],
    ],
)
def test_invalid_rules_are_refused(free_workspace, rules):
    with pytest.raises(ApplicationError):
        segment_create(workspace=free_workspace, name="Bad", rules=rules)
    assert segment_list(workspace=free_workspace) == []


def test_size_is_free_and_a_run_activates_as_segmentation(free_workspace, django_capture_on_commit_callbacks):
    ws = free_workspace
    activate_many(ws, ContactFactory.create_batch(95, workspace=ws, source="dm"), kind="campaign")
    story = ContactFactory.create_batch(8, workspace=ws, source="story")
    segment = segment_create(workspace=ws, name="Story fans", rules={"sources": ["story"]})

    assert segment_size(segment=segment) == 8
    assert [(s.segment.name, s.size) for s in segment_list(workspace=ws)] == [("Story fans", 8)]
    assert usage(ws).activated == 95

    added, limited = segment_run(segment=segment)

    assert (added, limited) == (5, 3)
    assert ActivationRecord.objects.filter(kind="segmentation", automation_ref=f"segment:{segment.pk}").count() == 5
    assert SegmentMembership.objects.filter(segment=segment).count() == 5
    assert PausedAction.objects.filter(action_type="segment_add", status="waiting").count() == 3
    assert segment_run(segment=segment) == (0, 0)  # members and paused ones are not asked twice

    with django_capture_on_commit_callbacks(execute=True):
        bonus_grant(workspace=ws, amount=3, reason="more", granted_by=None)
    assert set(SegmentMembership.objects.filter(segment=segment).values_list("contact_id", flat=True)) == {
        c.pk for c in story}
    assert usage(ws).activated == 103
