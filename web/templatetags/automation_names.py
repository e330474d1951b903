"""Automation names in templates: `{% automation_names workspace.pk rows as names %}` reads every
row's `automation_ref` at once (one query, automations.names), then `{{ names|name_of:row.automation_ref }}`."""

from django import template

from automations.names import AutomationName
from automations.names import automation_names as names_of_refs
from web.usage_views import automation_state, resume_wording

register = template.Library()


def _ref(row) -> str:
    if isinstance(row, str):
        return row
    if isinstance(row, tuple | list):
        return str(row[1])  # (kind, ref, count) rows
    return getattr(row, "automation_ref", "") or ""


@register.simple_tag
def automation_names(workspace_id: int, *row_lists) -> dict[str, AutomationName]:
    """Names of every row's reference, over one or more lists of rows (one query in all)."""
    refs = [_ref(row) for rows in row_lists for row in (rows or [])]
    return names_of_refs(refs, workspace_id=workspace_id)


@register.filter
def name_of(names: dict | None, ref: str) -> AutomationName | str:
    if not ref:
        return "—"
    found = (names or {}).get(ref)
    return found if found is not None else ref


@register.simple_tag
def paused_now_words(workspace, summary, reset_words: str) -> str:
    """What the resume job will do with the workspace's paused actions right now, in the words of the
    usage page (web.usage_views.resume_wording): for the paused lists of the automation pages."""
    state = automation_state(workspace=workspace, resets_at=summary.resets_at)
    return resume_wording(parts=summary.parts, waiting=state["paused_waiting"],
                          campaign_messages=state["paused_campaign_messages"], reset_words=reset_words,
                          expiring=state["paused_expiring"], blocked=state["paused_blocked"])
