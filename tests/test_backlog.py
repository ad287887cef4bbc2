"""A browser's backlog: what it has not been sent, coalesced."""

from __future__ import annotations

from app.live.backlog import Backlog, refresh_event


def row(lead: int, event_id: int) -> tuple[tuple[str, int], bytes, int]:
    return ("lead", lead), f"row {lead} at {event_id}\n\n".encode(), event_id


def test_entries_come_out_in_the_order_they_went_in() -> None:
    backlog = Backlog()
    for lead, event_id in [(1, 10), (2, 11), (3, 12)]:
        key, data, _ = row(lead, event_id)
        backlog.put(key, data, now=0.0, event_id=event_id)
    assert backlog.take() == b"row 1 at 10\n\nrow 2 at 11\n\nrow 3 at 12\n\n"
    assert len(backlog) == 0 and backlog.since is None


def test_the_newest_row_of_a_lead_replaces_an_older_one_and_moves_behind() -> None:
    backlog = Backlog()
    for lead, event_id in [(1, 10), (2, 11), (1, 12)]:
        key, data, _ = row(lead, event_id)
        backlog.put(key, data, now=0.0, event_id=event_id)
    assert len(backlog) == 2
    assert backlog.take() == b"row 2 at 11\n\nrow 1 at 12\n\n"  # ids stay in order


def test_an_older_row_never_replaces_a_newer_one() -> None:
    """A replayed row (read a moment before) must not take the place of a live one."""
    backlog = Backlog()
    backlog.put(("lead", 1), b"new", now=0.0, event_id=20)
    backlog.put(("lead", 1), b"old", now=0.0, event_id=15)
    assert backlog.take() == b"new" and backlog.newest_id == 20


def test_stats_and_status_are_kept_once() -> None:
    backlog = Backlog()
    backlog.put("stats", b"s1", now=0.0)
    backlog.put("status", b"catching-up", now=0.0)
    backlog.put("stats", b"s2", now=0.0)
    backlog.put("status", b"live", now=0.0)
    assert backlog.take() == b"s2live"


def test_past_the_limit_the_backlog_becomes_one_refresh_to_the_newest_id() -> None:
    backlog = Backlog(limit=3)
    backlog.put("status", b"live", now=0.0)
    for lead in range(1, 5):
        key, data, event_id = row(lead, 100 + lead)
        backlog.put(key, data, now=1.0, event_id=event_id)
    assert backlog.overflowed == 1 and backlog.refreshing
    # Rows that come while the refresh waits add nothing (the reload shows them), but move the id.
    backlog.put(("lead", 9), b"row 9", now=2.0, event_id=109)
    assert backlog.take() == refresh_event(109) + b"live"
    # Once the refresh is written, rows flow again.
    backlog.put(("lead", 9), b"row 9", now=3.0, event_id=110)
    assert backlog.take() == b"row 9"


def test_since_is_when_the_oldest_waiting_entry_went_in() -> None:
    backlog = Backlog()
    backlog.put(("lead", 1), b"a", now=5.0, event_id=1)
    backlog.put(("lead", 2), b"b", now=7.0, event_id=2)
    assert backlog.since == 5.0
    backlog.take()
    backlog.put(("lead", 3), b"c", now=9.0, event_id=3)
    assert backlog.since == 9.0
