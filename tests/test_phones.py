"""Phone normalisation against the shared cases (tests/fixtures/phone_numbers.json)."""

from __future__ import annotations

import json

import phonenumbers
import pytest

from app.phones import display_phone, is_bsuid, normalize_phone, normalize_wa_id
from tests.conftest import FIXTURES

DATA = json.loads((FIXTURES / "phone_numbers.json").read_text())
CASES = DATA["cases"]


@pytest.mark.parametrize("case", CASES, ids=[f"{c['source']}:{c['input']!r}" for c in CASES])
def test_normalisation_case(case: dict) -> None:
    normalise = normalize_wa_id if case["source"] == "wa_id" else normalize_phone
    assert normalise(case["input"]) == case["expected_e164"]


def test_the_library_trap_is_avoided() -> None:
    trap = DATA["trap_demo"]
    assert (
        phonenumbers.format_number(
            phonenumbers.parse("62811234567", "ID"), phonenumbers.PhoneNumberFormat.E164
        )
        == trap["result"]
    )  # the library really misreads a bare wa_id with a region...
    assert normalize_wa_id("62811234567") == "+62811234567"  # ...and we do not


def test_bsuids_are_not_phones() -> None:
    assert is_bsuid("ID.10482273615590381744") and is_bsuid("US.ENT.11815799212886844830")
    assert not is_bsuid("6281234567890") and not is_bsuid(None)


def test_display_phone_is_readable() -> None:
    assert display_phone("+6281234567890") == "+62 812-3456-7890"
    assert display_phone(None) == ""


def test_display_phone_formats_as_the_library_does() -> None:
    """The shortcut past parse() gives the library's own answer for every stored number."""
    stored = {c["expected_e164"] for c in CASES if c["expected_e164"]}
    stored |= {"+14155552671", "+442071838750", "+390612345678", "+79161234567", "+8613800138000"}
    for e164 in sorted(stored):
        expected = phonenumbers.format_number(
            phonenumbers.parse(e164, None), phonenumbers.PhoneNumberFormat.INTERNATIONAL
        )
        assert display_phone(e164) == expected, e164
    assert display_phone("not a phone") == "not a phone"
