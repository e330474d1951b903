"""The webhook store on PostgreSQL: one statement prepared per connection and run through libpq
(inro.sql.LibpqStatement), with the same guarantees as Django's cursor: rows as sent, Django's
exceptions on failure, and no escape from a surrounding transaction."""

import json

import psycopg
import pytest
from django.db import DatabaseError, connection, transaction

from contacts import intake
from contacts.models import WebhookDelivery

pytestmark = [pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def _no_nudge(monkeypatch):
    monkeypatch.setattr(intake, "_nudge_drain", lambda: None)


def _body(n: int) -> bytes:
    return json.dumps({"object": "instagram", "entry": [], "n": n, "text": 'quote " and \\ backslash, é'}).encode()


def _prepared_here() -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT name FROM pg_prepared_statements WHERE name LIKE 'inro%%'")
        return [row[0] for row in cursor.fetchall()]


def test_deliveries_are_stored_as_sent_through_one_statement_prepared_once():
    first, created = intake.delivery_store(body=_body(1), signature_valid=True)
    second, _ = intake.delivery_store(body=_body(2), signature_valid=False)

    assert created is True
    assert _prepared_here() == ["inro_intake_store"]
    stored = {d.pk: d for d in WebhookDelivery.objects.all()}
    assert set(stored) == {first.pk, second.pk}
    assert stored[first.pk].body == _body(1).decode()
    assert stored[first.pk].body_sha256 == intake.body_digest(_body(1))
    assert (stored[first.pk].signature_valid, stored[second.pk].signature_valid) == (True, False)
    assert stored[first.pk].status == WebhookDelivery.Status.PENDING
    assert stored[first.pk].received_at == first.received_at  # to the microsecond, time zone included


def test_the_same_body_again_is_not_stored_twice():
    first, _ = intake.delivery_store(body=_body(1), signature_valid=True)
    again, created = intake.delivery_store(body=_body(1), signature_valid=True)

    assert (again.pk, created) == (first.pk, False)
    assert WebhookDelivery.objects.count() == 1


def test_the_statement_is_prepared_again_after_the_driver_deallocates_all():
    intake.delivery_store(body=_body(1), signature_valid=True)
    with connection.cursor() as cursor:
        cursor.execute("DEALLOCATE ALL")  # what psycopg does when it clears its own cache

    delivery, created = intake.delivery_store(body=_body(2), signature_valid=True)

    assert created is True
    assert WebhookDelivery.objects.filter(pk=delivery.pk).exists()


def test_a_lost_connection_raises_djangos_error_and_the_next_request_reconnects():
    intake.delivery_store(body=_body(1), signature_valid=True)
    backend = connection.connection.info.backend_pid
    with psycopg.connect(**connection.get_connection_params(), autocommit=True) as killer:
        killer.execute("SELECT pg_terminate_backend(%s)", [backend])

    with pytest.raises(DatabaseError):
        intake.delivery_store(body=_body(2), signature_valid=True)
    assert connection.errors_occurred is True
    connection.close_if_unusable_or_obsolete()  # what Django does between requests

    delivery, created = intake.delivery_store(body=_body(3), signature_valid=True)
    assert created is True
    assert WebhookDelivery.objects.filter(pk=delivery.pk).exists()


def test_inside_a_transaction_the_store_is_rolled_back_with_it():
    with pytest.raises(RuntimeError), transaction.atomic():
        intake.delivery_store(body=_body(1), signature_valid=True)
        raise RuntimeError("the surrounding work failed")

    assert WebhookDelivery.objects.count() == 0
