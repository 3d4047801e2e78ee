"""The readable table printed without ``--json``."""

from __future__ import annotations

from typing import Any


def _format(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return {True: "met", False: "MISSED", None: "n/a at this size"}[value]
    if isinstance(value, float):
        if abs(value) >= 1000:
            return f"{value:,.0f}"
        return f"{value:.1f}" if abs(value) >= 100 else f"{value:.3g}"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, dict):
        return ", ".join(f"{k}: {_format(v)}" for k, v in value.items())
    return str(value)


def table(results: dict[str, dict[str, Any]], machine: dict[str, Any]) -> str:
    """One block per scenario: key, value (results as produced by the scenarios)."""
    lines = [" ".join(f"{k}={v}" for k, v in machine.items()), ""]
    width = max((len(k) for r in results.values() for k in r), default=10)
    for scenario, result in results.items():
        lines.append(scenario)
        lines.append("-" * len(scenario))
        for key, value in result.items():
            if key == "targets_met":
                continue
            lines.append(f"  {key:<{width}}  {_format(value)}")
        for target, met in result.get("targets_met", {}).items():
            lines.append(f"  target: {target}: {_format(met)}")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"
