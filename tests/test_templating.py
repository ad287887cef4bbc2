"""A lead's partial is rendered once per state of the lead and served from memory after that:
the cached HTML is always what rendering would give now, and any change to what the row shows
(the lead, the language, the time zone, the relative times, the form's token) renders anew."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from app.i18n import language
from app.leads.queries import LeadRow
from app.templating import LeadPartial, create_environment, row_html

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
TZ = "Asia/Jakarta"


def lead(**changes: object) -> LeadRow:
    base = LeadRow(
        id=7,
        display_name="Budi <b>Santoso</b>",
        phone_e164="+6281234567890",
        bsuid=None,
        status="new",
        temperature="hot",
        score=82,
        preview="Halo kak",
        preview_direction="inbound",
        message_count=3,
        last_activity_at=NOW - timedelta(minutes=3),
        last_inbound_at=NOW - timedelta(minutes=3),
        hot_since=NOW - timedelta(hours=2),
        needs_reply=True,
        pain_points=("stok",),
        created_at=NOW - timedelta(days=1),
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def test_a_cached_row_is_what_rendering_gives() -> None:
    env = create_environment()
    rows = LeadPartial(env, "partials/_row.html")
    first = rows(lead(), TZ, NOW)
    direct = env.get_template("partials/_row.html").render(lead=lead(), tz=TZ, now=NOW)
    assert str(first) == direct
    assert "3 min ago" in first and "2 h ago" in first and "Budi &lt;b&gt;Santoso" in first
    assert rows(lead(), TZ, NOW + timedelta(seconds=20)) is first  # served from memory
    assert len(rows) == 1


def test_whatever_the_row_shows_renders_anew() -> None:
    env = create_environment()
    rows = LeadPartial(env, "partials/_row.html")
    first = rows(lead(), TZ, NOW)
    rescored = rows(lead(score=91, temperature="warm"), TZ, NOW)
    assert 'title="Score 91/100"' in rescored and "temp-badge-warm" in rescored
    later = rows(lead(), TZ, NOW + timedelta(minutes=5))
    assert "8 min ago" in later and later != first
    elsewhere = rows(lead(), "Europe/London", NOW)
    assert "GMT" in elsewhere and "WIB" in first
    with language("id"):
        indonesian = rows(lead(), TZ, NOW)
    assert "perlu dibalas" in indonesian and "needs reply" in first
    assert len(rows) == 5


def test_extra_values_are_part_of_the_key() -> None:
    env = create_environment()
    cards = LeadPartial(env, "partials/_card.html")
    mine = cards(lead(), TZ, NOW, csrf_token="token-a")
    theirs = cards(lead(), TZ, NOW, csrf_token="token-b")
    assert 'value="token-a"' in mine and 'value="token-b"' in theirs


def test_memory_is_bounded_and_reload_keeps_nothing() -> None:
    env = create_environment()
    rows = LeadPartial(env, "partials/_row.html", maxsize=3)
    for n in range(10):
        rows(lead(id=n), TZ, NOW)
    assert len(rows) == 3
    reloading = create_environment(auto_reload=True)
    once = row_html(reloading, lead(), TZ)
    assert row_html(reloading, lead(), TZ) is not once  # edited templates show at once
    assert len(reloading.globals["row_html"]) == 0  # type: ignore[arg-type]
