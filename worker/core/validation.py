"""Readable validation messages: every problem named by its field path."""

from __future__ import annotations

from collections.abc import Collection, Sequence

from pydantic import ValidationError

#: Discriminator tags pydantic inserts into error locations; they are not fields.
UNION_TAGS = frozenset(
    {
        "activity.saved",
        "activity.deleted",
        "threshold",
        "streak",
        "training_completion",
        "tier",
        "all_of",
        "any_of",
        "raw",
    }
)


def field_path(loc: Sequence[int | str], tags: Collection[str] = UNION_TAGS) -> str:
    """``('badges', 0, 'criteria', 'threshold', 'min_count')`` -> ``badges[0].criteria.min_count``."""
    out = ""
    previous: int | str | None = None
    for index, part in enumerate(loc):
        is_tag = part in tags and (
            index == 0 or isinstance(previous, int) or previous == "criteria"
        )
        previous = part
        if is_tag:
            continue
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def describe_validation_error(error: ValidationError, prefix: str = "") -> list[str]:
    """One ``path: message`` line per problem."""
    lines = []
    for item in error.errors(include_url=False):
        path = field_path(item["loc"])
        if prefix:
            path = f"{prefix}.{path}" if path else prefix
        message = item["msg"].removeprefix("Value error, ")
        lines.append(f"{path or 'value'}: {message}")
    return lines
