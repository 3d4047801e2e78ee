"""The README's production walk-through and REST examples, run as written.

The blocks are read from README.md itself: every command runs in bash (with
the virtual environment's ``bin`` first on ``PATH``, as ``. .venv/bin/activate``
does), and each ``#>`` line under a command must appear in what it printed
(``…`` stands for anything).  The background processes of the blocks
(``celery … &``, ``uvicorn … &``) are this suite's own worker and a uvicorn
started here; ``export DATABASE_URL=…`` is the suite's throwaway database.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine, func, select, text

from schema.tables import metadata, processed_events
from tests.helpers import wait_for
from tests.integration.harness import WorkerProcess

ROOT = Path(__file__).resolve().parents[3]
README = (ROOT / "README.md").read_text(encoding="utf-8")
EXAMPLE_EVENTS = ROOT / "examples" / "events.jsonl"


@dataclass
class Step:
    command: str
    expected: list[str] = field(default_factory=list)


def _truncate(engine: Engine) -> None:
    with engine.begin() as c:
        c.execute(text(f"TRUNCATE {', '.join(t.name for t in metadata.sorted_tables)}"))


def _block(after: str, containing: str) -> list[Step]:
    """The steps of the first ``sh`` block after heading ``after`` that contains ``containing``."""
    section = README.split(after, 1)[1]
    for body in re.findall(r"```sh\n(.*?)```", section, flags=re.S):
        if containing in body:
            break
    else:
        raise AssertionError(f"no sh block with {containing!r} after {after!r}")
    steps: list[Step] = []
    pending = ""
    for line in body.splitlines():
        if line.startswith("#>"):
            steps[-1].expected.append(line[2:].strip())
            continue
        pending += line
        if line.endswith("\\"):
            pending = pending[:-1] + " "
            continue
        if pending.strip():
            steps.append(Step(pending.strip()))
        pending = ""
    return steps


def _appears(expected: str, output: str) -> bool:
    parts = [re.escape(p) for p in expected.split("…")]
    return re.search(".*".join(parts), output) is not None


def _env() -> dict[str, str]:
    bin_dir = str(Path(sys.executable).parent)
    return {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}


def _processed(engine: Engine) -> int:
    lines = EXAMPLE_EVENTS.read_text(encoding="utf-8").splitlines()
    ids = {json.loads(line)["event_id"] for line in lines if line.strip()}
    with engine.connect() as c:
        return int(
            c.execute(
                select(func.count())
                .select_from(processed_events)
                .where(processed_events.c.event_id.in_([uuid.UUID(i) for i in ids]))
            ).scalar_one()
        )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def uvicorn_port(clean_db: Engine) -> Iterator[int]:
    steps = _block("## REST API", "uvicorn api.app:app")
    secret = next(s.command for s in steps if s.command.startswith("export API_JWT_SECRET="))
    name, value = shlex.split(secret)[1].split("=", 1)
    env = {**_env(), name: value}
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "api.app:app", "--port", str(port)],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_for(lambda: _answers(port), until=bool, what="uvicorn to answer", timeout=60)
        yield port
    finally:
        server.terminate()
        server.wait(timeout=30)


def _answers(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/livez", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def test_the_production_walkthrough_and_rest_examples(
    clean_db: Engine, worker: WorkerProcess, uvicorn_port: int
) -> None:
    _truncate(clean_db)  # earlier tests may have committed rows (``--all``/``list`` see all)
    production = _block("## Running in production", "badges publish examples/events.jsonl")
    ran = 0
    for step in production:
        if step.command.startswith((".", "export ", "celery ")):
            continue  # activation, the suite's database and broker, the suite's worker
        done = subprocess.run(
            ["bash", "-c", step.command], cwd=ROOT, env=_env(), capture_output=True,
            text=True, timeout=120, check=False,
        )  # fmt: skip
        assert done.returncode == 0, (step.command, done.stdout, done.stderr)
        for expected in step.expected:
            assert _appears(expected, done.stdout), (step.command, expected, done.stdout)
        ran += 1
        if step.command.startswith("badges publish"):
            wait_for(
                lambda: _processed(clean_db), until=lambda n: n == 15, what="the example events"
            )
    assert ran >= 6

    rest = _block("## REST API", "uvicorn api.app:app")
    script = []
    for index, step in enumerate(rest):
        if step.command.startswith("uvicorn "):
            continue  # started by the fixture, on a free port
        script += [
            f"echo '@@@ {index}'",
            step.command.replace("localhost:8000", f"127.0.0.1:{uvicorn_port}"),
        ]
    done = subprocess.run(
        ["bash", "-c", "\n".join(script)], cwd=ROOT, env=_env(), capture_output=True,
        text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    outputs = dict(
        (int(chunk.split("\n", 1)[0]), chunk.split("\n", 1)[1] if "\n" in chunk else "")
        for chunk in done.stdout.split("@@@ ")[1:]
    )
    checked = 0
    for index, step in enumerate(rest):
        for expected in step.expected:
            assert _appears(expected, outputs[index]), (step.command, expected, outputs[index])
            checked += 1
    assert checked >= 5
