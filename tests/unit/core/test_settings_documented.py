"""Every setting is in the README's configuration table."""

from __future__ import annotations

import re
from pathlib import Path

from worker.core.settings import Settings

README = Path(__file__).resolve().parents[3] / "README.md"


def test_every_setting_has_a_row_in_the_readme_table() -> None:
    table = README.read_text(encoding="utf-8").split("## Configuration", 1)[1].split("\n## ", 1)[0]
    documented = set(re.findall(r"`([A-Z][A-Z0-9_]+)`", table))
    assert {name.upper() for name in Settings.model_fields} <= documented
