"""Pacing per Instagram account (contacts/pacing.py): the send rate and its share kept for replies, the
hour's private replies, and the back-off of a throttled account."""

import pytest

from contacts import pacing


@pytest.fixture
def asked(monkeypatch):
    """The waits the pacer asks for, without waiting."""
    waits: list[float] = []
    monkeypatch.setattr(pacing.time, "sleep", waits.append)
    return waits


def test_an_account_gets_its_send_rate_a_second_and_then_waits(settings, asked):
    settings.META_SEND_RATE, settings.META_CONVERSATION_RATE_SHARE = 10, 0.2
    spacing = 1 / 8  # the broadcasts' 80 %, spread evenly over the second

    for _ in range(8):
        pacing.send_slot("acct-1", lane=pacing.BROADCAST, sleep=asked.append)
    assert len(asked) == 7 and all(0 < wait <= spacing for wait in asked)  # spread, never held back longer
    asked.clear()
    with pytest.raises(TimeoutError):
        pacing.send_slot("acct-1", lane=pacing.BROADCAST, sleep=_give_up_after(asked, 3))
    assert any(spacing < wait <= 1.01 for wait in asked)  # the 9th waits for the window to move

    asked.clear()
    for _ in range(2):  # the conversation share is still free: replies go without waiting for the window
        pacing.send_slot("acct-1", lane=pacing.CONVERSATION, sleep=asked.append)
    assert all(wait <= 1 / 10 for wait in asked)
    asked.clear()
    with pytest.raises(TimeoutError):  # the account's whole rate is used now
        pacing.send_slot("acct-1", lane=pacing.CONVERSATION, sleep=_give_up_after(asked, 3))
    assert any(1 / 10 < wait <= 1.01 for wait in asked)

    asked.clear()
    pacing.send_slot("acct-2", lane=pacing.BROADCAST, sleep=asked.append)  # another account: its own rate
    assert asked == []


def _give_up_after(waits: list[float], times: int):
    def sleep(seconds: float) -> None:
        waits.append(seconds)
        if len(waits) >= times:
            raise TimeoutError
    return sleep


def test_a_throttled_account_waits_in_every_process_and_a_longer_back_off_is_kept(settings):
    settings.META_THROTTLE_BACKOFF_SECONDS = 20

    assert pacing.account_back_off("acct-1", None) == 20
    pacing.account_back_off("acct-1", 5)  # a shorter one does not cut the running back-off

    assert 19 < pacing.backoff_remaining("acct-1") <= 20
    assert pacing.backoff_remaining("acct-2") == 0
