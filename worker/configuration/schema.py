"""The organisation configuration file: organisations, badges, tiers, award periods.

Validation is pure and complete before anything is written: every problem is
reported with the item and field it concerns (``badges[2] (code 'x').criteria.min_count``).
Ids are derived from natural keys (organisation + code, organisation + level,
organisation + name) so applying the same file twice changes nothing.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Annotated, Any, Literal, Self
from uuid import UUID, uuid5

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from worker.configuration.lines import Loader, with_lines
from worker.core.models import FrozenModel
from worker.core.validation import describe_validation_error
from worker.model.criteria import RAW_WARNING, Criteria, contains_raw
from worker.model.events import ActivityType
from worker.model.tiers import RecognitionTier, TierAwardPeriod, TierLevel

#: Namespace for ids derived from natural keys.
ID_NAMESPACE = UUID("5d0b6f0e-8a57-4c43-9d0c-6b1f3a2e9c11")
BadgeCode = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,99}$")]


class ConfigurationError(ValueError):
    """The file breaks the rules; ``problems`` lists each one (path: message)."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


class OrganisationConfig(FrozenModel):
    id: UUID
    name: str = Field(min_length=1, max_length=200)
    language: Literal["nb", "en"] = "nb"


class BadgeDefinitionConfig(FrozenModel):
    organisation_id: UUID
    code: BadgeCode
    name: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=2000)
    enabled: bool = True
    revocable: bool = False
    criteria: Criteria

    @property
    def id(self) -> UUID:
        return uuid5(ID_NAMESPACE, f"badge:{self.organisation_id}:{self.code}")


class TierConfig(RecognitionTier):
    """A recognition tier as configured; ``level`` may be given by name."""

    activity_types: tuple[ActivityType, ...] = ()

    @field_validator("level", mode="before")
    @classmethod
    def _level_by_name(cls, value: object) -> object:
        if isinstance(value, str):
            return TierLevel.from_name(value)
        if isinstance(value, int) and value not in {t.value for t in TierLevel}:
            raise ValueError(
                f"unknown tier level {value}; allowed: {', '.join(t.label for t in TierLevel)}"
            )
        return value

    @property
    def id(self) -> UUID:
        return uuid5(ID_NAMESPACE, f"tier:{self.organisation_id}:{int(self.level)}")

    def to_tier(self) -> RecognitionTier:
        return RecognitionTier(**self.model_dump())


class AwardPeriodConfig(FrozenModel):
    organisation_id: UUID
    name: str = Field(min_length=1, max_length=200)
    start_date: date
    end_date: date
    is_active: bool = True

    @field_validator("name", mode="before")
    @classmethod
    def _name_as_text(cls, value: object) -> object:
        # YAML reads `name: 2026` as a number; a period name is text.
        return str(value) if isinstance(value, int) else value

    @model_validator(mode="after")
    def _end_not_before_start(self) -> Self:
        if self.end_date < self.start_date:
            raise ValueError(f"end_date {self.end_date} is before start_date {self.start_date}")
        return self

    @property
    def id(self) -> UUID:
        return uuid5(ID_NAMESPACE, f"period:{self.organisation_id}:{self.name}")

    def to_period(self) -> TierAwardPeriod:
        return TierAwardPeriod(id=self.id, **self.model_dump())


class Configuration(BaseModel):
    """A whole validated file."""

    model_config = ConfigDict(frozen=True)

    organisations: tuple[OrganisationConfig, ...] = ()
    badges: tuple[BadgeDefinitionConfig, ...] = ()
    tiers: tuple[TierConfig, ...] = ()
    award_periods: tuple[AwardPeriodConfig, ...] = ()

    @property
    def warnings(self) -> list[str]:
        return [
            f"badges (code {b.code!r}): {RAW_WARNING}"
            for b in self.badges
            if contains_raw(b.criteria)
        ]

    @property
    def organisation_ids(self) -> set[UUID]:
        ids = {o.id for o in self.organisations}
        for group in (self.badges, self.tiers, self.award_periods):
            ids |= {item.organisation_id for item in group}
        return ids


_SECTIONS: dict[str, type[FrozenModel]] = {
    "organisations": OrganisationConfig,
    "badges": BadgeDefinitionConfig,
    "tiers": TierConfig,
    "award_periods": AwardPeriodConfig,
}


def _label(section: str, index: int, raw: Any) -> str:
    label = f"{section}[{index}]"
    if isinstance(raw, dict):
        for key in ("code", "name", "level"):
            if key in raw:
                return f"{label} ({key} {raw[key]!r})"
    return label


def validate_configuration(data: Any) -> Configuration:
    """Validate a parsed file; raise :class:`ConfigurationError` listing every problem."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigurationError(["file: expected a mapping with keys " + ", ".join(_SECTIONS)])
    problems: list[str] = []
    unknown = sorted(set(data) - set(_SECTIONS))
    if unknown:
        problems.append(
            f"file: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(_SECTIONS)}"
        )
    parsed: dict[str, list[Any]] = {}
    for section, model in _SECTIONS.items():
        items = data.get(section) or []
        if not isinstance(items, list):
            problems.append(f"{section}: expected a list")
            continue
        parsed[section] = []
        for index, raw in enumerate(items):
            try:
                parsed[section].append(model.model_validate(raw))
            except ValidationError as exc:
                problems.extend(describe_validation_error(exc, prefix=_label(section, index, raw)))
    if not problems:
        problems.extend(_duplicates(parsed))
    if problems:
        raise ConfigurationError(problems)
    return Configuration(**{section: tuple(items) for section, items in parsed.items()})


def _duplicates(parsed: dict[str, list[Any]]) -> list[str]:
    keys: dict[str, Callable[[Any], tuple[Any, ...]]] = {
        "organisations": lambda o: (o.id,),
        "badges": lambda b: (b.organisation_id, b.code),
        "tiers": lambda t: (t.organisation_id, int(t.level)),
        "award_periods": lambda p: (p.organisation_id, p.name),
    }
    problems = []
    for section, key in keys.items():
        seen: dict[Any, int] = {}
        for index, item in enumerate(parsed.get(section, [])):
            k = key(item)
            if k in seen:
                problems.append(f"{section}[{index}]: duplicates {section}[{seen[k]}]")
            seen.setdefault(k, index)
    return problems


def load_configuration_file(path: Path) -> Configuration:
    """Read YAML or JSON (by suffix; YAML otherwise) and validate it."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigurationError([f"file: cannot read {path}: {exc.strerror}"]) from None
    try:
        data = json.loads(text) if path.suffix.lower() == ".json" else yaml.load(text, Loader)
    except (ValueError, yaml.YAMLError) as exc:
        raise ConfigurationError(
            [f"file: {path} is not valid {path.suffix or 'YAML'}: {exc}"]
        ) from None
    try:
        return validate_configuration(data)
    except ConfigurationError as exc:  # JSON is YAML too: the same line lookup works
        raise ConfigurationError(with_lines(exc.problems, text)) from None
