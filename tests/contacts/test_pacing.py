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


def test_an_account_gets_its_send_rate_a_second_and_broadcasts_leave_the_replies_their_share(settings):
    settings.META_SEND_RATE, settings.META_CONVERSATION_RATE_SHARE = 10, 0.2
    limiter, _ = pacing._limiter(pacing.pacing_url())

    def slots(account: str, lane: str, n: int) -> list[bool]:
        return [pacing._try_slot(limiter, account, lane) == 0.0 for _ in range(n)]

    assert slots("acct-1", pacing.BROADCAST, 9) == [True] * 8 + [False]  # broadcasts: 80 % of the second
    assert slots("acct-1", pacing.CONVERSATION, 3) == [True, True, False]  # replies: the rest, then the account is full
    assert 0 < pacing._try_slot(limiter, "acct-1", pacing.BROADCAST) <= 1.0  # how long until the window moves
    assert slots("acct-2", pacing.BROADCAST, 1) == [True]  # another account: its own rate


def test_a_waiting_sender_asks_to_wait_for_the_window_then_sends(settings, asked):
    settings.META_SEND_RATE, settings.META_CONVERSATION_RATE_SHARE = 10, 0.2
    limiter, _ = pacing._limiter(pacing.pacing_url())
    for _ in range(8):
        pacing._try_slot(limiter, "acct-1", pacing.BROADCAST)

    with pytest.raises(TimeoutError):
        pacing.send_slot("acct-1", lane=pacing.BROADCAST, sleep=_give_up_after(asked, 3))

    assert all(0 < wait <= 1.01 for wait in asked)


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
