"""Notification texts: title and body of each notification kind, per language.

Pure: takes the outbox payload and returns text.  Norwegian bokmål (``nb``) is
the default; English (``en``) is available per organisation.

The texts are written to be read aloud by a screen reader (many of
Blindeforbundet's members use one): whole sentences, no emoji or symbols that
carry meaning, the badge or tier named in words, dates spelled out
("2. mars 2026", not "02.03.26").
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, tzinfo
from typing import Any, Literal

from worker.notifications.types import BADGE_EARNED, TIER_PROMOTED

Language = Literal["nb", "en"]
DEFAULT_LANGUAGE: Language = "nb"

_MONTHS: dict[Language, tuple[str, ...]] = {
    "nb": (
        "januar",
        "februar",
        "mars",
        "april",
        "mai",
        "juni",
        "juli",
        "august",
        "september",
        "oktober",
        "november",
        "desember",
    ),
    "en": (
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ),
}

#: Tier names by level (bronze=1 … platinum=4).
_TIER_NAMES: dict[Language, dict[int, str]] = {
    "nb": {1: "bronse", 2: "sølv", 3: "gull", 4: "platina"},
    "en": {1: "Bronze", 2: "Silver", 3: "Gold", 4: "Platinum"},
}
_TIER_LEVELS = {"bronze": 1, "silver": 2, "gold": 3, "platinum": 4}


class UnknownKind(ValueError):
    """A notification kind this module has no text for (a programming error)."""


@dataclass(frozen=True)
class RenderedMessage:
    language: Language
    title: str
    body: str


def language_of(value: str | None) -> Language:
    """The language to write in: ``en`` when asked for, bokmål otherwise."""
    return "en" if value == "en" else DEFAULT_LANGUAGE


def render(
    kind: str, payload: Mapping[str, Any], *, language: str | None, tz: tzinfo
) -> RenderedMessage:
    """Title and body for one notification.

    ``tz`` is the zone dates are shown in (the organisation's local time),
    so an award just after midnight Oslo time shows the Norwegian date.
    """
    lang = language_of(language)
    if kind == BADGE_EARNED:
        return _badge_earned(payload, lang, tz)
    if kind == TIER_PROMOTED:
        return _tier_promoted(payload, lang)
    raise UnknownKind(f"no notification text for kind {kind!r}")


def spoken_date(day: date, language: Language) -> str:
    """A date written out in words, as a screen reader reads it well."""
    month = _MONTHS[language][day.month - 1]
    if language == "nb":
        return f"{day.day}. {month} {day.year}"
    return f"{day.day} {month} {day.year}"


def tier_name(payload: Mapping[str, Any], language: Language) -> str:
    level = payload.get("tier_level")
    if not isinstance(level, int):
        level = _TIER_LEVELS.get(str(payload.get("tier", "")).lower())
    if level in _TIER_NAMES[language]:
        return _TIER_NAMES[language][level]
    return str(payload.get("tier", ""))


def _badge_earned(payload: Mapping[str, Any], lang: Language, tz: tzinfo) -> RenderedMessage:
    name = _clean(payload.get("name") or payload.get("code") or "")
    earned = _local_date(payload.get("earned_at"), tz)
    if lang == "nb":
        title = f"Nytt merke: {name}"
        body = f"Gratulerer, du har fått et nytt merke: {_sentence(name)}"
        if earned is not None:
            body += f" Merket ble tildelt {spoken_date(earned, lang)}."
    else:
        title = f"New badge: {name}"
        body = f"Congratulations, you have earned a new badge: {_sentence(name)}"
        if earned is not None:
            body += f" It was awarded on {spoken_date(earned, lang)}."
    return RenderedMessage(lang, title, body)


def _tier_promoted(payload: Mapping[str, Any], lang: Language) -> RenderedMessage:
    tier = tier_name(payload, lang)
    period = _clean(str(payload.get("award_period_name") or ""))
    if lang == "nb":
        title = f"Nytt nivå: {tier[:1].upper()}{tier[1:]}"
        body = f"Gratulerer, du har nådd nivået {tier}"
        body += f" for perioden {period}." if period else "."
        body += " Takk for innsatsen din som likeperson."
    else:
        title = f"New tier: {tier} Mentor"
        body = f"Congratulations, you have reached the {tier} tier"
        body += f" for the award period {period}." if period else "."
        body += " Thank you for your work as a peer mentor."
    return RenderedMessage(lang, title, body)


def _clean(text: str) -> str:
    return " ".join(str(text).split())


def _sentence(text: str) -> str:
    """``text`` ending a sentence: add a full stop unless it already ends with one."""
    return text if text.endswith((".", "!", "?")) else f"{text}."


def _local_date(value: Any, tz: tzinfo) -> date | None:
    if not isinstance(value, str):
        return None
    try:
        instant = datetime.fromisoformat(value)
    except ValueError:
        return None
    if instant.tzinfo is None:  # stored instants are UTC
        return instant.date()
    return instant.astimezone(tz).date()
