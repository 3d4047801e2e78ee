"""Pausing Python's cyclic garbage collector around a bounded bulk operation.

The collector runs a full pass over every tracked object each time the
number of surviving new objects grows by a quarter of the old ones.  A bulk
run that keeps tens of thousands of small objects sets off several such
passes over the whole heap, the loaded modules included: a tier run's
promotions, rows and notifications, or the history import's batches of
parsed lines.  In a quick tier run of 10,000 mentors those passes took about
an eighth of its time, in a quick import about a tenth.  Those objects are
not cyclic garbage: reference counting frees them, so pausing the collector
for the run loses nothing, and the next collection after it works as before.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def collection_paused() -> Iterator[None]:
    """Disable automatic garbage collection inside the block; restore it after.

    The collector is process-wide.  Overlapping blocks in several threads
    can only end a pause early (the first block that started with the
    collector enabled turns it back on); none leaves it disabled, unless it
    was disabled before.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
