"""``python -m bench SCENARIO [--quick] [--json]`` (SCENARIO may be ``all``)."""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from types import FrameType
from typing import Any

from bench.progress import say
from bench.report import table
from bench.scenarios import MODULES, SCENARIOS
from bench.targets import check


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("scenario", choices=[*SCENARIOS, "all"])
    parser.add_argument("--quick", action="store_true", help="smaller sizes (all < 5 min)")
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    return parser


_children: list[subprocess.Popen[bytes]] = []


def _interrupt(signum: int, _frame: FrameType | None) -> None:
    """First SIGINT/SIGTERM: unwind like Ctrl-C so every ``finally`` cleans up.

    Further signals are ignored, so a second Ctrl-C cannot cut the clean-up
    short.  A scenario child of ``all`` gets SIGTERM forwarded (Ctrl-C reaches
    it directly: it is in the same process group).
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if signum == signal.SIGTERM:
        for child in _children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
    raise KeyboardInterrupt(f"signal {signum}")


def run_one(name: str, *, quick: bool) -> dict[str, Any]:
    """Run one scenario in this process (its resources are set up inside)."""
    module = importlib.import_module(MODULES[name])
    say(f"scenario {name}{' (quick)' if quick else ''}")
    started = time.monotonic()
    result: dict[str, Any] = module.run(quick=quick)
    result["wall_seconds"] = round(time.monotonic() - started, 1)
    result["targets_met"] = check(name, result)
    return result


def run_all(*, quick: bool) -> dict[str, Any]:
    """Each scenario in a fresh ``python -m bench SCENARIO --json`` child process.

    A fresh process per scenario: the worker settings are read once per
    process, and each scenario has its own database and Redis index.
    """
    results: dict[str, Any] = {}
    for name in SCENARIOS:
        command = [sys.executable, "-m", "bench", name, "--json", *(["--quick"] if quick else [])]
        child = subprocess.Popen(command, stdout=subprocess.PIPE)
        _children.append(child)
        try:
            out, _ = child.communicate()
        except BaseException:
            child.wait()  # it got the signal too and is cleaning up
            raise
        if child.returncode == 0:
            results[name] = json.loads(out)
        else:
            results[name] = {"error": f"exit code {child.returncode}"}
            say(f"scenario {name} failed (exit code {child.returncode})")
    return results


def machine() -> dict[str, Any]:
    return {
        "date": datetime.now(UTC).date().isoformat(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
    }


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        if args.scenario == "all":
            result = run_all(quick=args.quick)
            failed = any("error" in r for r in result.values())
        else:
            result = run_one(args.scenario, quick=args.quick)
            failed = False
    except KeyboardInterrupt:
        say("interrupted; cleaned up")
        return 130
    if args.json:
        print(json.dumps(result, indent=None if args.scenario != "all" else 2))
    else:
        print(table(result if args.scenario == "all" else {args.scenario: result}, machine()))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
