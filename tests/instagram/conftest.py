"""The intake fixtures (signed deliveries, the hook spy) serve the Instagram connection tests too."""

from tests.contacts.conftest import captured_events, deliver  # noqa: F401 (fixtures)
