"""Phone number normalisation for WhatsApp identities.

A wa_id is the international number without '+'; parsing it with a default region misreads short
Indonesian numbers as national ones (62811... -> +6262811...), so ids from WhatsApp are parsed as
'+' + digits. Numbers typed by people ("0812-...", "0062 ...", "+62 (0) 812...") are parsed with the
workspace's default region.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

import phonenumbers

_BSUID = re.compile(r"^[A-Z]{2}(\.[A-Z]+)?\.\d+$")
_DIGITS = re.compile(r"\D")
# Indonesian operators' international dialling prefixes, typed as if calling from abroad.
_ID_IDD_PREFIXES = ("01017", "001", "007", "008", "009")


def is_bsuid(value: str | None) -> bool:
    """A business-scoped user id ("ID.1048...", "US.ENT.1181...") stands in for a hidden phone."""
    return bool(value) and bool(_BSUID.match(value.strip()))  # type: ignore[union-attr]


@lru_cache(maxsize=65536)  # pure, and the same people write again and again
def normalize_wa_id(value: str | None) -> str | None:
    """E.164 for a phone that WhatsApp or Kapso sent ("628...", "+62 812-...")."""
    if not value or is_bsuid(value):
        return None
    digits = _DIGITS.sub("", value)
    if not digits:
        return None
    if value.strip().startswith("00"):
        digits = digits[2:]
    return _format("+" + digits, None)


@lru_cache(maxsize=65536)
def normalize_phone(value: str | None, default_region: str = "ID") -> str | None:
    """E.164 for a phone typed by a person or a bot; None when it is not a valid number."""
    if not value or is_bsuid(value):
        return None
    text = unicodedata.normalize("NFKC", value).strip()
    digits = _DIGITS.sub("", text.split("ext")[0])
    if not digits:
        return None
    if text.startswith("+"):
        return _format(text, None, strict=True)
    if digits.startswith("00"):
        for prefix in _ID_IDD_PREFIXES:
            if digits.startswith(prefix):
                found = _format("+" + digits[len(prefix) :], None, strict=True)
                if found:
                    return found
        return _format("+" + digits[2:], None, strict=True)
    if digits.startswith("0"):
        return _format(text, default_region, strict=True)
    if default_region == "ID" and digits.startswith("62"):
        # "62812..." is a wa_id written without '+', not a national number.
        return _format("+" + digits, None, strict=True)
    national = _format(digits, default_region, strict=True)
    return national or _format("+" + digits, None, strict=True)


def _format(text: str, region: str | None, strict: bool = False) -> str | None:
    try:
        parsed = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return None
    ok = phonenumbers.is_valid_number(parsed) if strict else phonenumbers.is_possible_number(parsed)
    if not ok:
        return None
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


@lru_cache(maxsize=65536)  # every board row formats one; the same leads come back all day
def display_phone(e164: str | None) -> str:
    """A readable international form for the board ("+62 812-3456-7890")."""
    if not e164:
        return ""
    parsed = _from_e164(e164)
    if parsed is None:
        try:
            parsed = phonenumbers.parse(e164, None)
        except phonenumbers.NumberParseException:
            return e164
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.INTERNATIONAL)


def _from_e164(e164: str) -> phonenumbers.PhoneNumber | None:
    """What parse() gives for a stored E.164 number, without parsing (two thirds of the cost
    of formatting one). None when only parse() can tell: not "+digits", an unknown country
    code, or a national number with a leading zero (Italy's, kept as a flag by parse)."""
    if not (e164.startswith("+") and e164[1:].isdigit()):
        return None
    for size in (1, 2, 3):
        code = int(e164[1 : 1 + size])
        if code in phonenumbers.COUNTRY_CODE_TO_REGION_CODE:
            national = e164[1 + size :]
            if not national or national.startswith("0"):
                return None
            return phonenumbers.PhoneNumber(country_code=code, national_number=int(national))
    return None
