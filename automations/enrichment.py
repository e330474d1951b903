"""The enrichment adapter: profile data (followers, biography) for a contact, chosen by setting.

ENRICHMENT_BACKEND names a class with `fetch(contact) -> EnrichedProfile`. The default is a
deterministic fake (no network); a real provider gets its own class here and maps its errors to
EnrichmentError.
"""

import hashlib
from dataclasses import dataclass

from django.conf import settings
from django.utils.module_loading import import_string

from contacts.models import Contact

DEFAULT_BACKEND = "automations.enrichment.FakeEnrichmentBackend"


@dataclass(frozen=True, slots=True)
class EnrichedProfile:
    follower_count: int
    biography: str


class EnrichmentError(Exception):
    """The provider could not enrich this contact (after its own retries)."""


class FakeEnrichmentBackend:
    """Same contact, same answer: derived from the Instagram-scoped id."""

    def fetch(self, contact: Contact) -> EnrichedProfile:
        digest = hashlib.sha256(contact.igsid.encode()).digest()
        followers = int.from_bytes(digest[:4], "big") % 50_000
        handle = contact.username or contact.igsid
        return EnrichedProfile(follower_count=followers, biography=f"Instagram creator @{handle}")


def backend():
    return import_string(getattr(settings, "ENRICHMENT_BACKEND", DEFAULT_BACKEND) or DEFAULT_BACKEND)()
