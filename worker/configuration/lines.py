"""Reading configuration YAML so that every problem names its item *and* line.

PyYAML turns ``2026-13-01`` into a date while parsing and fails on the
whole file, naming neither item nor field.  :data:`Loader` keeps dates as
text, so the item's own validation reports the bad field; :func:`item_lines`
finds the line where each ``section[index]`` item starts, so messages can
point there.
"""

from __future__ import annotations

import re

import yaml

_TIMESTAMP = "tag:yaml.org,2002:timestamp"


class Loader(yaml.SafeLoader):
    """``yaml.SafeLoader`` without the implicit timestamp type (dates stay strings)."""


Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != _TIMESTAMP]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}

_ITEM = re.compile(r"^(?P<section>[a-z_]+)\[(?P<index>\d+)\]")


def item_lines(text: str) -> dict[tuple[str, int], int]:
    """1-based start line of each list item under each top-level key."""
    try:
        root = yaml.compose(text, Loader=Loader)
    except yaml.YAMLError:
        return {}
    lines: dict[tuple[str, int], int] = {}
    if not isinstance(root, yaml.MappingNode):
        return lines
    for key, value in root.value:
        if isinstance(value, yaml.SequenceNode):
            for index, item in enumerate(value.value):
                lines[(str(key.value), index)] = item.start_mark.line + 1
    return lines


def with_lines(problems: list[str], text: str) -> list[str]:
    """Prefix ``line N:`` to each problem about a ``section[index]`` item."""
    lines = item_lines(text)
    located = []
    for problem in problems:
        match = _ITEM.match(problem)
        line = lines.get((match["section"], int(match["index"]))) if match else None
        located.append(f"line {line}: {problem}" if line else problem)
    return located
