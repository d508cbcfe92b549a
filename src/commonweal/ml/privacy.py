"""Personal data in free text: find it, and redact it, before a contribution is accepted.

``find_personal_data`` reports where a text holds an e-mail address, a phone number, a
payment card number, an IBAN or an IP address; ``redact`` replaces those spans with a
placeholder. A finding carries only its kind and position, never the matched text, so the
hub can log and report findings without copying anyone's personal data into the log. Each
detector pairs a cheap regular expression with a check that knows the format (libphonenumber's
metadata, the Luhn and ISO 13616 mod-97 checksums, the ``ipaddress`` parser), which keeps
ordinary prose, dates, years, prices and short numbers from being flagged. Two decisions a
reader should know: a dotted quad of valid octets (``10.0.0.1``, and so also a version string
``1.2.3.4``) is reported as an IP address, because the text alone cannot tell them apart and
missing an address costs more than redacting a version number (a quad glued to a word, as in
``v1.2.3.4``, or with a fifth part, as in ``1.2.3.4.5``, is not reported); and names of people
are not detected at all: that needs a trained NER model (spaCy, Presidio), none ships with the
hub and nothing here may download one, so a reviewer still has to read for names.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import phonenumbers
from stdnum import iban, luhn

__all__ = ["Finding", "Kind", "find_personal_data", "redact"]

Kind = Literal["email", "phone", "card", "iban", "ip"]

PLACEHOLDERS: dict[str, str] = {
    "email": "[EMAIL]",
    "phone": "[PHONE]",
    "card": "[CARD]",
    "iban": "[IBAN]",
    "ip": "[IP]",
}

# When two detectors claim overlapping text the spans are merged and the merged finding takes
# the kind that is most specific: a checksummed IBAN or card beats a phone-number reading of
# the same digits, an e-mail address beats an IP literal inside it.
_PRIORITY: dict[str, int] = {"email": 0, "iban": 1, "card": 2, "ip": 3, "phone": 4}


@dataclass(frozen=True)
class Finding:
    """One span of personal data: ``text[start:end]`` is of this ``kind``."""

    kind: Kind
    start: int
    end: int


# Lookbehind/lookahead keep an address from starting or ending inside a longer token.
_EMAIL = re.compile(
    r"(?<![\w.%+-])[\w.%+-]{1,64}@[^\W_](?:[\w-]{0,62}[^\W_])?"
    r"(?:\.[^\W_](?:[\w-]{0,62}[^\W_])?)*\.[^\W\d_]{2,63}(?![\w-])"
)

# A maximal run of digits joined by single spaces or dashes: cards are written "4111 1111
# 1111 1111", "4111-1111-...", or unbroken. The whole run is considered, so digits of two
# numbers that merely sit next to each other are not read as one card.
_DIGIT_RUN = re.compile(r"(?<![\d])\d(?:[ -]?\d){12,}(?![\d])")
_RUN_GROUP = re.compile(r"\d+")

# Two letters, two check digits, then 10-30 letters/digits, optionally in space-separated
# groups. Candidates are trimmed back group by group until the checksum holds, because the
# pattern cannot tell where the IBAN ends and an upper-case word after it begins.
_IBAN = re.compile(r"(?<![\w])[A-Za-z]{2}\d{2}(?: ?[A-Za-z0-9]){10,30}(?![\w])")
_IBAN_PREFIX = re.compile(r"[A-Za-z]{2}\d{2}")

_IPV4 = re.compile(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?!\w|\.\d)")
# Embedded IPv4 is tried before a last hex group, so "::ffff:192.0.2.1" is read whole.
_IPV6 = re.compile(
    r"(?<![\w:.])(?:[0-9A-Fa-f]{0,4}:){2,7}"
    r"(?:\d{1,3}(?:\.\d{1,3}){3}|[0-9A-Fa-f]{1,4})?(?![\w:])"
)

# libphonenumber's matcher is the slow part (50-100 microseconds per text), so it runs only
# when the text holds at least seven digits close together, the fewest any dialable number
# with a country code has, and they are not simply a date or a range of years.
_PHONE_HINT = re.compile(r"\d(?:[\s().\-/]{0,3}\d){6,}")
_DATE = re.compile(
    r"\d{4}[-/.]\d{1,2}[-/.]\d{1,2}|\d{1,2}[-/.]\d{1,2}[-/.]\d{2,4}|\d{4} ?[-/] ?\d{4}"
)

_TOKEN = re.compile(r"\S+")
# North American numbers written the North American way — "(555) 123-4567", "415-555-2671"
# — are phone numbers by their shape alone: libphonenumber's VALID check refuses the
# fictional 555 exchange and unassigned area codes that people still write as examples
# of their own number, and punctuation this specific is not a date or a price.
_NANP_REGIONS = frozenset({"US", "CA"})
_NANP = re.compile(r"(?<![\d\w])(?:\+?1[ .-]?)?(?:\(\d{3}\) ?|\d{3}[-.])\d{3}[-.]\d{4}(?![\d\w])")
# E.164 allows 15 digits; an international or trunk prefix written out adds up to two more.
_MAX_PHONE_DIGITS = 17
_PHONE_RETRY_BUDGET = 64

_MIN_CARD, _MAX_CARD = 13, 19
# Where members of a community are presumed to write from, unless its charter says.
DEFAULT_REGIONS = ("GB", "US", "CA")
_MAX_PASSES = 8


def find_personal_data(
    text: str, *, region: str | None = None, regions: Sequence[str] = DEFAULT_REGIONS
) -> list[Finding]:
    """Spans of personal data in ``text``, non-overlapping and sorted by start.

    ``regions`` are the ISO 3166 countries whose national formats phone numbers written
    without a ``+`` country code are read in (a community's members write their own
    country's way: "020 7946 0018" in Britain, "(555) 123-4567" in the US and Canada);
    numbers written with a country code are found whatever the regions. ``region`` is one
    region alone.
    """
    where = (region,) if region is not None else tuple(regions)
    # Detectors run from the most specific to the least, and each one reads the text as it
    # will be once what was found so far is redacted: a phone number glued to a card ("020
    # 7946 0018 4111 1111 1111 1111") is one long non-number until the card is replaced, and
    # in "a@b.cox+c@d.org" the second address only starts once the first is gone. Passes
    # repeat until one finds nothing new, so redacting the result leaves nothing to find.
    # Text without personal data takes one pass over an unchanged view; the cap is a backstop
    # (every pass that continues has grown the redacted span).
    found: list[Finding] = []
    for _ in range(_MAX_PASSES):
        before = found
        for detect in _DETECTORS:
            view = _RedactedView(text, found)
            hits = detect(view.text, where)
            if hits:
                found = _merge(found + [view.original(h) for h in hits])
        if found == before:
            break
    return found


def redact(text: str, findings: Sequence[Finding]) -> str:
    """``text`` with each finding's span replaced by a placeholder such as ``[EMAIL]``.

    Raises ``ValueError`` if findings overlap or fall outside the text (the message gives
    positions only, never the text).
    """
    parts: list[str] = []
    pos = 0
    for f in sorted(findings, key=lambda f: (f.start, f.end)):
        if not 0 <= f.start < f.end <= len(text) or f.start < pos:
            raise ValueError(
                f"finding {f.kind} at {f.start}..{f.end} overlaps another or is outside "
                f"the text (length {len(text)}); pass the findings of this text"
            )
        parts.append(text[pos : f.start])
        parts.append(PLACEHOLDERS[f.kind])
        pos = f.end
    parts.append(text[pos:])
    return "".join(parts)


def _emails(text: str, regions: tuple[str, ...]) -> list[Finding]:
    if "@" not in text:
        return []
    return [Finding("email", m.start(), m.end()) for m in _EMAIL.finditer(text)]


def _ibans(text: str, regions: tuple[str, ...]) -> list[Finding]:
    if not _IBAN_PREFIX.search(text):
        return []
    out: list[Finding] = []
    for m in _IBAN.finditer(text):
        candidate = m.group()
        # Try the whole candidate, then drop trailing space-separated groups one at a time.
        ends = [len(candidate)] + [
            i for i in range(len(candidate) - 1, 0, -1) if candidate[i] == " "
        ]
        for end in ends:
            if iban.is_valid(candidate[:end]):
                out.append(Finding("iban", m.start(), m.start() + end))
                break
    return out


def _cards(text: str, regions: tuple[str, ...]) -> list[Finding]:
    out: list[Finding] = []
    for m in _DIGIT_RUN.finditer(text):
        groups = [(g.start(), g.end()) for g in _RUN_GROUP.finditer(m.group())]
        out.extend(
            Finding("card", m.start() + start, m.start() + end)
            for start, end in _cards_in_run(m.group(), groups)
        )
    return out


def _cards_in_run(run: str, groups: list[tuple[int, int]]) -> list[tuple[int, int]]:
    # A run may hold a card next to another number, or two cards. Scan left to right and at
    # each group take the longest window of whole groups that is a card, so a card is never
    # cut through a group. A window never exceeds 19 digits, so this is linear in the run.
    spans: list[tuple[int, int]] = []
    i = 0
    while i < len(groups):
        best: tuple[int, int, int] | None = None
        digits = 0
        for j in range(i, len(groups)):
            digits += groups[j][1] - groups[j][0]
            if digits > _MAX_CARD:
                break
            if digits >= _MIN_CARD and _is_card(run[groups[i][0] : groups[j][1]]):
                best = (groups[i][0], groups[j][1], j)
        if best is None:
            i += 1
            continue
        spans.append((best[0], best[1]))
        i = best[2] + 1
    return spans


def _is_card(candidate: str) -> bool:
    digits = candidate.replace(" ", "").replace("-", "")
    # Issuer numbers of real cards start with 2-6 (Mastercard 2/5, Amex/Diners/JCB 3, Visa 4,
    # Discover/UnionPay/Maestro 6). Requiring that halves the chance that a long order or
    # tracking number which happens to pass Luhn (one in ten) is taken for a card.
    return _MIN_CARD <= len(digits) <= _MAX_CARD and digits[0] in "23456" and luhn.is_valid(digits)


def _ips(text: str, regions: tuple[str, ...]) -> list[Finding]:
    out = _ipv4s(text)
    if text.count(":") >= 2:
        out.extend(_ipv6s(text))
    return out


def _ipv4s(text: str) -> list[Finding]:
    out: list[Finding] = []
    for m in _IPV4.finditer(text):
        try:
            ipaddress.IPv4Address(m.group())
        except ValueError:
            continue
        out.append(Finding("ip", m.start(), m.end()))
    return out


def _ipv6s(text: str) -> list[Finding]:
    out: list[Finding] = []
    for m in _IPV6.finditer(text):
        candidate = m.group()
        # A sentence may end right after an address ("... at fe80::1:"); try without the
        # trailing colon too. Require two non-empty groups, so that a bare "::" (Haskell,
        # C++) or "::1" (loopback, nobody's address) is not reported.
        for cand in (candidate, candidate.rstrip(":")):
            if sum(1 for g in re.split(r"[:.]", cand) if g) < 2:
                continue
            try:
                ipaddress.IPv6Address(cand)
            except ValueError:
                continue
            out.append(Finding("ip", m.start(), m.start() + len(cand)))
            break
    return out


def _phones(text: str, regions: tuple[str, ...]) -> list[Finding]:
    runs = [m for m in _PHONE_HINT.finditer(text) if not _DATE.fullmatch(m.group())]
    if not runs:
        return []  # no run of seven digits, or only dates: skip the slow matcher
    found: list[Finding] = []
    for region in regions:
        found = _merge(found + _phones_in(text, runs, region))
    return found


def _phones_in(text: str, runs: list[re.Match[str]], region: str) -> list[Finding]:
    found = _match_phones(text, region)
    if region in _NANP_REGIONS:
        found = _merge(found + [Finding("phone", m.start(), m.end()) for m in _NANP.finditer(text)])
    budget = [_PHONE_RETRY_BUDGET]
    for run in runs:
        if not any(f.start < run.end() and run.start() < f.end for f in found):
            found.extend(_phones_in_run(text, run.start(), run.end(), region, budget))
    return found


def _match_phones(text: str, region: str) -> list[Finding]:
    # VALID leniency: the number must be a real, assignable number for its country per
    # libphonenumber's metadata. POSSIBLE (length only) flags years, dates and prices.
    matcher = phonenumbers.PhoneNumberMatcher(text, region, leniency=phonenumbers.Leniency.VALID)
    return [Finding("phone", m.start, m.end) for m in matcher]


def _phones_in_run(
    text: str, start: int, end: int, region: str, budget: list[int]
) -> list[Finding]:
    # libphonenumber reads digits joined by spaces as one number, so numbers listed with only
    # a space between them ("020 7946 0018 020 7946 0019") are missed. Retry the run's
    # space-separated pieces, left to right, longest first, as the cards are scanned. Each
    # retry costs a matcher call, so a text gets a fixed budget of them: a page of digits
    # cannot make this quadratic.
    tokens = [(start + t.start(), start + t.end()) for t in _TOKEN.finditer(text[start:end])]
    out: list[Finding] = []
    i = 0
    while i < len(tokens) and budget[0] > 0:
        best: tuple[int, int, int] | None = None
        digits = 0
        for j in range(i, len(tokens)):
            digits += sum(c.isdigit() for c in text[tokens[j][0] : tokens[j][1]])
            if digits > _MAX_PHONE_DIGITS or (i, j) == (0, len(tokens) - 1) or budget[0] <= 0:
                break
            budget[0] -= 1
            window = text[tokens[i][0] : tokens[j][1]]
            if any(f.start == 0 and f.end == len(window) for f in _match_phones(window, region)):
                best = (tokens[i][0], tokens[j][1], j)
        if best is None:
            i += 1
            continue
        out.append(Finding("phone", best[0], best[1]))
        i = best[2] + 1
    return out


_DETECTORS: tuple[Callable[[str, tuple[str, ...]], list[Finding]], ...] = (
    _emails,
    _ibans,
    _cards,
    _ips,
    _phones,
)


class _RedactedView:
    """``text`` as ``redact(text, found)`` makes it, and the way back to ``text``'s positions."""

    def __init__(self, text: str, found: list[Finding]) -> None:
        self.text = redact(text, found) if found else text
        # (start in view, end in view, start in text, end in text) of each placeholder.
        self._holes: list[tuple[int, int, int, int]] = []
        shift = 0
        for f in found:
            width = len(PLACEHOLDERS[f.kind])
            self._holes.append((f.start + shift, f.start + shift + width, f.start, f.end))
            shift += width - (f.end - f.start)

    def original(self, hit: Finding) -> Finding:
        """``hit`` (positions in the view) in positions of the text; a hit that touches a
        placeholder grows to cover all of what the placeholder replaced."""
        return Finding(hit.kind, self._to_text(hit.start, 0), self._to_text(hit.end - 1, 1))

    def _to_text(self, pos: int, after: int) -> int:
        # ``after`` is 0 for a start position and 1 for the last character of a span.
        shift = 0
        for v_start, v_end, t_start, t_end in self._holes:
            if pos < v_start:
                break
            if pos < v_end:
                return t_end if after else t_start
            shift += (v_end - v_start) - (t_end - t_start)
        return pos - shift + after


def _merge(found: list[Finding]) -> list[Finding]:
    if not found:
        return []
    found.sort(key=lambda f: (f.start, -f.end))
    merged: list[Finding] = []
    kind, start, end = found[0].kind, found[0].start, found[0].end
    for f in found[1:]:
        if f.start < end:
            end = max(end, f.end)
            if _PRIORITY[f.kind] < _PRIORITY[kind]:
                kind = f.kind
            continue
        merged.append(Finding(kind, start, end))
        kind, start, end = f.kind, f.start, f.end
    merged.append(Finding(kind, start, end))
    return merged
