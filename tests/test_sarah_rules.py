"""Sarah's pure rules: state mapping, temperature, score, merging extracted data."""

from __future__ import annotations

import pytest

from app.sarah.rules import (
    ExtractedDataError,
    clamp_score,
    merge_extracted,
    status_for_state,
    valid_temperature,
)


@pytest.mark.parametrize(
    ("state", "status"),
    [
        ("greeting", "new"),
        ("collect_name", "new"),
        ("salam_kenal", "new"),
        ("collect_domisili", "new"),
        ("qualifying", "qualified"),
        ("listening", "qualified"),
        ("summarize", "qualified"),
        ("validate_pain_points", "qualified"),
        ("discover_interest", "qualified"),
        ("scoring", "qualified"),
        ("solution_match", "contacted"),
        ("close_attempt", "contacted"),
        ("handoff", "contacted"),
        ("completed", "converted"),
        ("Handoff", "contacted"),
        ("dancing", None),
        ("", None),
        (None, None),
    ],
)
def test_state_to_status(state: str | None, status: str | None) -> None:
    assert status_for_state(state) == status


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("hot", "hot"),
        ("WARM", "warm"),
        ("lukewarm", "lukewarm"),
        ("cold", "cold"),
        ("boiling", "cold"),
        ("", "cold"),
        (None, "cold"),
        (5, "cold"),
    ],
)
def test_temperature(given: object, expected: str) -> None:
    assert valid_temperature(given) == expected


@pytest.mark.parametrize(
    ("given", "expected"),
    [(45, 45), (-3, 0), (180, 100), (79.6, 80), ("55", 55), ("x", 0), (None, 0), (float("inf"), 0)],
)
def test_score_is_clamped(given: object, expected: int) -> None:
    assert clamp_score(given) == expected


def test_non_empty_replaces_empty_never_erases() -> None:
    current = {
        "name": None,
        "business_type": "katering",
        "location": "Bekasi",
        "pain_points": ["a"],
    }
    updates = merge_extracted(
        current,
        {
            "business_type": "",
            "domisili": "Depok",
            "pain_points": [],
            "team_size": 5,
            "goals": None,
        },
    )
    assert updates == {"location": "Depok", "team_size": "5"}


def test_bot_name_never_replaces_an_existing_name() -> None:
    assert merge_extracted({"name": "Budi Santoso"}, {"name": "Pak Budi"}) == {}
    assert merge_extracted({"name": None}, {"name": "  Pak   Budi "}) == {"name": "Pak Budi"}


def test_pain_points_as_list_or_text() -> None:
    assert merge_extracted({}, {"pain_points": ["kewalahan", " miss message "]}) == {
        "pain_points": ["kewalahan", "miss message"]
    }
    assert merge_extracted({}, {"pain_points": "stok, ongkir"}) == {
        "pain_points": ["stok", "ongkir"]
    }


def test_unchanged_values_are_not_updates() -> None:
    assert merge_extracted({"business_type": "spa"}, {"business_type": "spa"}) == {}


@pytest.mark.parametrize(
    "bad", [{"pain_points": 42}, {"business_type": {"x": 1}}, {"pain_points": [{}]}]
)
def test_values_the_lead_cannot_take_raise(bad: dict) -> None:
    with pytest.raises(ExtractedDataError):
        merge_extracted({}, bad)
