"""The built-in PII detectors of the guardrails: a pattern per kind, and a check on its match.

They are hand-written, on purpose. Presidio needs spaCy and a language model downloaded at run
time (hundreds of MB, out of reach of machines without internet); scrubadub has had no release
since 2023 and brings the same NLP stack; phonenumbers would cover phones only. So: cards are
taken with a Luhn check (13-19 digits, first digit 2-6), IBANs at their country's length with
mod-97, IPv6 addresses when :mod:`ipaddress` parses them, US SSNs outside the never-issued ranges
(000, 666, 9xx; 00; 0000) and written ``123-45-6789`` or ``123 45 6789``. A phone number is 10-15
digits (8-15 after ``+``) in a formatted shape (groups split by space, dot or dash, an area code in
brackets), so bare digit runs, dates and IPv4 addresses are not phones. Emails have a local part
of at most 64 characters and up to 8 domain labels.

Each match stands alone: no pattern starts after a letter or digit, or ends before one, so
``x4111 1111 1111 1111`` is no card. The patterns look at most :data:`LOOKAHEAD_CHARS` past a
match, which the streaming filter holds back beyond ``holdBackChars``. All are written so the
engine does linear work per start position (no nested unbounded repeats): they run without a
time limit.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from typing import Literal, TypeAlias

__all__ = ["DETECTORS", "IBAN_LENGTHS", "LOOKAHEAD_CHARS", "PII_KINDS", "Check", "PiiKind", "luhn"]

PiiKind: TypeAlias = Literal["email", "phone", "credit_card", "iban", "ip_address", "us_ssn"]
PII_KINDS: tuple[PiiKind, ...] = ("email", "phone", "credit_card", "iban", "ip_address", "us_ssn")
LOOKAHEAD_CHARS = 2
"""How far past a match the patterns look (``(?!\\.[0-9])`` after an IPv4 address)."""

Check: TypeAlias = Callable[[str], int]
"""A pattern's match in, the length of it to take out (0: not this kind after all)."""


def luhn(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch) * (2 if i % 2 else 1)
        total += d - 9 if d > 9 else d
    return total % 10 == 0


def _card(match: str) -> int:
    return len(match) if luhn("".join(ch for ch in match if ch.isdigit())) else 0


# The SWIFT IBAN registry's lengths; an IBAN is only taken at its country's exact length.
_IBAN_TABLE = (
    "AD24AE23AL28AT20AZ28BA20BE16BG22BH22BI27BR29BY28CH21CR22CY28CZ24DE22DJ27DK18DO28EE20EG29"
    "ES24FI18FK18FO18FR27GB22GE22GI23GL18GR27GT28HN28HR21HU28IE22IL23IQ23IS26IT27JO30KW30KZ20"
    "LB28LC32LI21LT20LU20LV21LY25MC27MD24ME22MK19MN20MR27MT31MU30NI28NL18NO15OM23PK24PL28PS29"
    "PT25QA29RO24RS22RU33SA24SC31SD18SE24SI19SK24SM27SO23ST25SV28TL23TN24TR26UA29VA22VG24XK20YE30"
)
IBAN_LENGTHS = {
    _IBAN_TABLE[i : i + 2]: int(_IBAN_TABLE[i + 2 : i + 4]) for i in range(0, len(_IBAN_TABLE), 4)
}


def _iban(match: str) -> int:
    """The candidate runs on greedily (``DE89 … 00 AND``): keep its country's length of it."""
    want = IBAN_LENGTHS.get(match[:2])
    code = match.replace(" ", "")[:want].upper() if want else ""
    if len(code) != want:
        return 0
    number = "".join(str(int(ch, 36)) for ch in code[4:] + code[:4])
    if int(number) % 97 != 1:
        return 0
    seen = 0
    for end, ch in enumerate(match, 1):
        seen += ch != " "
        if seen == want:
            return end
    return 0  # not reached: ``code`` has ``want`` characters


def _ipv6(match: str) -> int:
    text = match.rstrip(".")  # a sentence's full stop
    if text.count(":") < 2 or text == "::":
        return 0
    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        return 0
    return len(text)


def _phone(match: str) -> int:
    digits = sum(ch.isdigit() for ch in match)
    parts = match.split(".")
    if len(parts) == 4 and all(p.isdigit() and int(p) <= 255 for p in parts):
        return 0  # an IPv4 address
    low = 8 if match.startswith("+") else 10
    return len(match) if low <= digits <= 15 else 0


_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
DETECTORS: dict[PiiKind, tuple[tuple[str, Check | None], ...]] = {
    "email": (
        (
            r"(?<![\w.%+-])[A-Za-z0-9._%+-]{1,64}@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)"
            r"{1,8}[A-Za-z]{2,63}(?![\w-]|\.[A-Za-z0-9])",
            None,
        ),
    ),
    "phone": (
        (
            r"(?<![\w+]|[0-9][ .-])(?:\+[0-9]{7,15}|(?:\+[0-9]{1,3}[ .-]?)?(?:\([0-9]{1,5}\)[ .-]?)?"
            r"[0-9]{1,5}(?:[ .-][0-9]{1,8}){1,5}|\([0-9]{1,5}\)[ .-]?[0-9]{3,8})(?![\w]|[ .:-][0-9])",
            _phone,
        ),
    ),
    "credit_card": ((r"(?<![\w]|[0-9][ -])[2-6](?:[ -]?[0-9]){12,18}(?![\w]|[ -][0-9])", _card),),
    "iban": ((r"(?<![\w])[A-Z]{2}[0-9]{2}(?: ?[A-Za-z0-9]){11,30}", _iban),),
    "ip_address": (
        (rf"(?<![\w.])(?:{_OCTET}\.){{3}}{_OCTET}(?![\w]|\.[0-9])", None),
        (r"(?<![\w:.])[0-9A-Fa-f:.]{2,45}(?![\w:])", _ipv6),
    ),
    "us_ssn": (
        (
            r"(?<![\w-]|[0-9] )(?!000|666|9)[0-9]{3}([- ])(?!00)[0-9]{2}\1(?!0000)[0-9]{4}"
            r"(?![\w]|[- ][0-9])",
            None,
        ),
    ),
}
