"""Sarah's rules, pure: state -> lead status, temperature, score, and how extracted data merges."""

from __future__ import annotations

from typing import Any

# The bot's flow states and chat_phase names, mapped onto the sales pipeline.
STATE_TO_STATUS: dict[str, str] = {
    "greeting": "new",
    "collect_name": "new",
    "salam_kenal": "new",
    "collect_domisili": "new",
    "qualifying": "qualified",
    "listening": "qualified",
    "summarize": "qualified",
    "validate_pain_points": "qualified",
    "discover_interest": "qualified",
    "scoring": "qualified",
    "solution_match": "contacted",
    "close_attempt": "contacted",
    "handoff": "contacted",
    "completed": "converted",
}
TEMPERATURES = ("hot", "warm", "lukewarm", "cold")

# extracted_data keys -> contact columns; "domisili" is the bot's word for location.
TEXT_FIELDS: dict[str, str] = {
    "name": "name",
    "business_type": "business_type",
    "location": "location",
    "domisili": "location",
    "business_duration": "business_duration",
    "team_size": "team_size",
    "goals": "goals",
    "priority": "priority",
    "urgency_level": "urgency_level",
}
LIST_FIELDS: dict[str, str] = {"pain_points": "pain_points"}

DEFAULT_STATE: dict[str, Any] = {
    "state": "greeting",
    "lead_score": 0,
    "lead_temperature": "cold",
    "extracted_data": {},
    "language": "id",
    "message_count": 0,
}


class ExtractedDataError(ValueError):
    """extracted_data holds a value the lead cannot take (the state is still saved)."""


def status_for_state(state: str | None) -> str | None:
    """The pipeline status a bot state implies; None for states we do not know (keep the status)."""
    return STATE_TO_STATUS.get((state or "").strip().lower())


def valid_temperature(value: object) -> str:
    text = str(value).strip().lower() if value is not None else ""
    return text if text in TEMPERATURES else "cold"


def clamp_score(value: object) -> int:
    try:
        score = round(float(value))  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):
        return 0
    return max(0, min(100, score))


def _is_empty(value: object) -> bool:
    if value is None:
        return True
    if isinstance(value, str):
        return not value.strip()
    if isinstance(value, list | dict | tuple):
        return len(value) == 0
    return False


def _as_text(key: str, value: object, limit: int) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ExtractedDataError(f"extracted_data.{key} must be text, not {type(value).__name__}")
    text = " ".join(str(value).split())
    return text[:limit]


def _as_list(key: str, value: object) -> list[str]:
    if isinstance(value, str):
        items = [part.strip() for part in value.split(",")]
    elif isinstance(value, list):
        items = []
        for item in value:
            if not isinstance(item, str | int | float) or isinstance(item, bool):
                raise ExtractedDataError(f"extracted_data.{key} must be a list of text")
            items.append(" ".join(str(item).split()))
    else:
        raise ExtractedDataError(f"extracted_data.{key} must be a list of text")
    return [item[:200] for item in items if item][:20]


def merge_extracted(current: dict[str, Any], extracted: dict[str, Any]) -> dict[str, Any]:
    """Column updates from extracted_data: non-empty values replace, empty never erase.

    `current` holds the contact's columns; the bot's name never replaces a name the lead has.
    """
    updates: dict[str, Any] = {}
    for key, column in TEXT_FIELDS.items():
        value = extracted.get(key)
        if _is_empty(value):
            continue
        text = _as_text(key, value, 2000 if column == "goals" else 200)
        if column == "name" and current.get("name"):
            continue
        if text != current.get(column):
            updates[column] = text
    for key, column in LIST_FIELDS.items():
        value = extracted.get(key)
        if _is_empty(value):
            continue
        items = _as_list(key, value)
        if items and items != current.get(column):
            updates[column] = items
    return updates
