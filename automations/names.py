"""Names of automations from their references ("campaign:4" -> "Autumn launch"), for every surface a
person reads (pages, CSV, admin).

References are what the ledger and the paused actions store; people read names. The look-up takes
every reference of a page at once and answers with one query (a UNION over the automation tables),
however many rows the page has.
"""

from collections.abc import Iterable
from dataclasses import dataclass

from django.db.models import CharField, F, Value

from automations.models import Campaign, EnrichmentJob, Integration, Scenario, Segment

# kind prefix of a reference -> (model, what a person calls it)
_KINDS = {
    "campaign": (Campaign, "Campaign"),
    "scenario": (Scenario, "Scenario"),
    "segment": (Segment, "Segment"),
    "integration": (Integration, "Integration"),
    "enrichment": (EnrichmentJob, "Data enrichment"),
}


@dataclass(frozen=True, slots=True)
class AutomationName:
    ref: str
    kind_label: str  # "Campaign"
    name: str  # "Autumn launch", or a readable stand-in when the automation is gone
    exists: bool
    object_id: int | None

    def __str__(self) -> str:
        return self.name

    @property
    def full(self) -> str:
        """"Campaign “Autumn launch”": the kind and the name."""
        return f"{self.kind_label} “{self.name}”" if self.exists else self.name


def _parse(ref: str) -> tuple[str, int | None]:
    prefix, _, rest = (ref or "").partition(":")
    head = rest.split(":", 1)[0]
    return prefix, int(head) if head.isdigit() and len(head) < 12 else None


def _fallback(ref: str) -> AutomationName:
    prefix, object_id = _parse(ref)
    label = _KINDS[prefix][1] if prefix in _KINDS else (prefix.replace("_", " ").capitalize() or "Automation")
    if object_id is not None:
        name = f"{label} #{object_id} (deleted)"
    elif ref:
        name = f"{label} (imported or demo data)"
    else:
        name = "—"
    return AutomationName(ref=ref, kind_label=label, name=name, exists=False, object_id=object_id)


def automation_names(refs: Iterable[str], *, workspace_id: int | None = None) -> dict[str, AutomationName]:
    """{reference: AutomationName} for every reference given: one query for all of them.

    With `workspace_id`, only that workspace's automations answer (a reference of another
    workspace reads as deleted); without it (staff admin lists), any workspace's.
    """
    refs = {ref for ref in refs if ref}
    wanted: dict[str, set[int]] = {}
    for ref in refs:
        prefix, object_id = _parse(ref)
        if prefix in _KINDS and object_id is not None:
            wanted.setdefault(prefix, set()).add(object_id)
    found: dict[str, AutomationName] = {}
    queries = []
    for prefix, ids in sorted(wanted.items()):
        model, _ = _KINDS[prefix]
        rows = model.objects.filter(pk__in=sorted(ids))
        if workspace_id is not None:
            rows = rows.filter(workspace_id=workspace_id)
        # Enrichment jobs have no name: "Data enrichment #3" is made below.
        name = Value("", output_field=CharField()) if prefix == "enrichment" else F("name")
        queries.append(rows.order_by().annotate(
            k=Value(prefix, output_field=CharField()), n=name, i=F("pk"),
        ).values_list("k", "i", "n"))
    if queries:
        union = queries[0].union(*queries[1:], all=True) if len(queries) > 1 else queries[0]
        for prefix, object_id, name in union:
            ref = f"{prefix}:{object_id}"
            name = name or f"{_KINDS[prefix][1]} #{object_id}"
            found[ref] = AutomationName(ref=ref, kind_label=_KINDS[prefix][1], name=name, exists=True,
                                        object_id=object_id)
    result = {}
    for ref in refs:
        prefix, object_id = _parse(ref)
        key = f"{prefix}:{object_id}"
        result[ref] = found[key] if key in found else _fallback(ref)
    return result

