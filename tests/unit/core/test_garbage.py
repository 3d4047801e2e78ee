"""The garbage collector pause: off inside the block, as before after it."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from worker.core.garbage import collection_paused


@pytest.fixture(autouse=True)
def _collector_restored() -> Iterator[None]:
    enabled = gc.isenabled()
    yield
    if enabled:
        gc.enable()
    else:
        gc.disable()


def test_paused_inside_and_enabled_after() -> None:
    gc.enable()
    with collection_paused():
        assert not gc.isenabled()
    assert gc.isenabled()


def test_enabled_again_after_an_error() -> None:
    gc.enable()
    with pytest.raises(RuntimeError), collection_paused():
        raise RuntimeError("boom")
    assert gc.isenabled()


def test_a_collector_disabled_before_stays_disabled() -> None:
    gc.disable()
    with collection_paused():
        assert not gc.isenabled()
    assert not gc.isenabled()


def test_nested_pauses_enable_once_the_outer_ends() -> None:
    gc.enable()
    with collection_paused():
        with collection_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()
    assert gc.isenabled()


def test_as_a_decorator_each_call_pauses() -> None:
    @collection_paused()
    def state() -> bool:
        return gc.isenabled()

    gc.enable()
    assert state() is False
    assert state() is False
    assert gc.isenabled()
