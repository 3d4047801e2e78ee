"""Notification texts: languages, both kinds, screen-reader friendly."""

from __future__ import annotations

import unicodedata
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest

from worker.notifications.texts import (
    RenderedMessage,
    UnknownKind,
    language_of,
    render,
    spoken_date,
)
from worker.notifications.types import BADGE_EARNED, TIER_PROMOTED

OSLO = ZoneInfo("Europe/Oslo")
BADGE = {
    "earned_badge_id": "6a1f3f0e-2c1b-4a57-9d0e-0c9b5f1f3a11",
    "badge_definition_id": "1b8e3d2c-5f4a-4b3c-8d2e-1f0a9b8c7d6e",
    "code": "ten-sessions",
    "name": "10 likepersonssamtaler",
    # 23:30 UTC on 1 March is already 2 March in Oslo.
    "earned_at": datetime(2026, 3, 1, 23, 30, tzinfo=UTC).isoformat(),
}
TIER = {
    "tier": "gold",
    "tier_level": 3,
    "award_period_id": "0d6f1c2e-3a4b-4c5d-8e9f-a0b1c2d3e4f5",
    "award_period_name": "2026",
    "assigned_at": "2026-06-01T08:00:00+00:00",
}


def test_badge_earned_in_bokmal_names_the_badge_and_the_local_date() -> None:
    message = render(BADGE_EARNED, BADGE, language="nb", tz=OSLO)
    assert message == RenderedMessage(
        "nb",
        "Nytt merke: 10 likepersonssamtaler",
        "Gratulerer, du har fått et nytt merke: 10 likepersonssamtaler. "
        "Merket ble tildelt 2. mars 2026.",
    )


def test_badge_earned_in_english() -> None:
    message = render(BADGE_EARNED, BADGE, language="en", tz=OSLO)
    assert message.language == "en"
    assert message.title == "New badge: 10 likepersonssamtaler"
    assert message.body == (
        "Congratulations, you have earned a new badge: 10 likepersonssamtaler. "
        "It was awarded on 2 March 2026."
    )


@pytest.mark.parametrize("language", [None, "", "nb", "nn", "se", "EN"])
def test_bokmal_is_the_default_for_anything_but_english(language: str | None) -> None:
    assert language_of(language) == "nb"
    assert render(BADGE_EARNED, BADGE, language=language, tz=OSLO).title.startswith("Nytt merke")


def test_tier_promotion_in_both_languages() -> None:
    nb = render(TIER_PROMOTED, TIER, language="nb", tz=OSLO)
    en = render(TIER_PROMOTED, TIER, language="en", tz=OSLO)
    assert nb.title == "Nytt nivå: Gull"
    assert nb.body == (
        "Gratulerer, du har nådd nivået gull for perioden 2026. "
        "Takk for innsatsen din som likeperson."
    )
    assert en.title == "New tier: Gold Mentor"
    assert en.body.startswith("Congratulations, you have reached the Gold tier")
    assert "award period 2026." in en.body


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        ({"tier_level": 1}, "Nytt nivå: Bronse"),
        ({"tier_level": 2}, "Nytt nivå: Sølv"),
        ({"tier": "platinum"}, "Nytt nivå: Platina"),  # level derived from the name
    ],
)
def test_tier_names_follow_the_level(payload: dict[str, object], expected: str) -> None:
    message = render(TIER_PROMOTED, payload, language="nb", tz=OSLO)
    assert message.title == expected
    assert message.body.endswith("Takk for innsatsen din som likeperson.")
    assert "perioden" not in message.body  # no period name given: no dangling words


def test_a_name_ending_a_sentence_gets_no_second_full_stop() -> None:
    message = render(BADGE_EARNED, {**BADGE, "name": "Godt jobbet!"}, language="nb", tz=OSLO)
    assert "Godt jobbet! Merket" in message.body
    assert ".." not in message.body and "!." not in message.body


def test_missing_date_leaves_out_the_date_sentence() -> None:
    message = render(BADGE_EARNED, {**BADGE, "earned_at": None}, language="en", tz=OSLO)
    assert message.body == "Congratulations, you have earned a new badge: 10 likepersonssamtaler."


@pytest.mark.parametrize("kind", [BADGE_EARNED, TIER_PROMOTED])
@pytest.mark.parametrize("language", ["nb", "en"])
def test_texts_read_well_with_a_screen_reader(kind: str, language: str) -> None:
    payload = BADGE if kind == BADGE_EARNED else TIER
    message = render(kind, payload, language=language, tz=OSLO)
    for text in (message.title, message.body):
        # No emoji or other symbols (category S*): meaning is carried by words.
        assert not [c for c in text if unicodedata.category(c).startswith("S")], text
        assert text == " ".join(text.split())  # no stray whitespace or line breaks
    assert message.body.endswith(".")


def test_spoken_dates() -> None:
    assert spoken_date(date(2026, 12, 31), "nb") == "31. desember 2026"
    assert spoken_date(date(2026, 1, 1), "en") == "1 January 2026"


def test_unknown_kind_is_an_error() -> None:
    with pytest.raises(UnknownKind, match="digest"):
        render("digest", {}, language="nb", tz=OSLO)
