"""The delivery tasks' message: a batch of outbox ids, or one."""

from __future__ import annotations

import uuid

import pytest
from pydantic import ValidationError

from worker.tasks.notifications import MAX_BATCH, DeliveryMessage


def test_a_batch_or_a_single_id_is_accepted() -> None:
    ids = [uuid.uuid4() for _ in range(3)]
    assert DeliveryMessage.model_validate({"outbox_ids": [str(i) for i in ids]}).ids == ids
    assert DeliveryMessage.model_validate({"outbox_id": str(ids[0])}).ids == ids[:1]


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"outbox_id": str(uuid.uuid4()), "outbox_ids": [str(uuid.uuid4())]},
        {"outbox_ids": []},
        {"outbox_ids": ["not-a-uuid"]},
        {"outbox_ids": [str(uuid.uuid4()) for _ in range(MAX_BATCH + 1)]},
        {"outbox_id": str(uuid.uuid4()), "extra": 1},
    ],
    ids=["neither", "both", "empty", "malformed", "too many", "unknown key"],
)
def test_malformed_messages_are_rejected(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        DeliveryMessage.model_validate(kwargs)
