"""What a quarantine row keeps of a raw payload: bounded, storable, and saying when it was cut."""

from __future__ import annotations

import pytest

from worker.ingestion.quarantine import bounded_raw


@pytest.mark.parametrize(
    "payload",
    [b"x" * 5_000_000, "é" * 100_000, b"\x00" * 70_000, b"\xff\xfe" * 40_000, {"k": "v" * 70_000}],
)
def test_a_large_payload_is_cut_to_the_limit_and_says_so(payload: object) -> None:
    text, note = bounded_raw(payload, max_bytes=65536)
    assert 65536 - 4 <= len(text.encode()) <= 65536
    assert "\x00" not in text  # PostgreSQL text cannot hold NUL
    assert note.startswith(" [raw payload truncated")


def test_a_small_payload_is_kept_whole() -> None:
    assert bounded_raw({"event_id": "e1"}, max_bytes=1024) == ('{"event_id": "e1"}', "")
    assert bounded_raw(b"broken \xff json", max_bytes=1024) == ("broken \ufffd json", "")


def test_nesting_too_deep_to_serialise_still_gives_text() -> None:
    deep: list[object] = []
    for _ in range(100_000):
        deep = [deep]
    text, _ = bounded_raw(deep, max_bytes=1024)
    assert text
