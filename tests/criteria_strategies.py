"""Hypothesis strategies for badge criteria trees (property tests of the SQL evaluation)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from hypothesis import strategies as st

ACTIVITY_TYPES = ("peer_session", "phone_call")


def criteria_trees(
    *,
    max_count: int,
    max_streak: int,
    courses: Sequence[str],
    extra_leaves: Sequence[st.SearchStrategy[dict[str, Any]]] = (),
) -> st.SearchStrategy[dict[str, Any]]:
    """Thresholds, week and month streaks and course completions, nested in ``all_of``/``any_of``.

    ``extra_leaves`` adds leaf kinds (e.g. ``tier`` or ``raw`` criteria).
    """
    types = st.lists(st.sampled_from(ACTIVITY_TYPES), max_size=2, unique=True)
    leaves = st.one_of(
        st.builds(
            lambda t, n: {"type": "threshold", "version": 1, "activity_types": t, "min_count": n},
            types,
            st.integers(1, max_count),
        ),
        st.builds(
            lambda p, t, n: {
                "type": "streak",
                "version": 1,
                "period": p,
                "activity_types": t,
                "min_length": n,
            },
            st.sampled_from(["week", "month"]),
            types,
            st.integers(1, max_streak),
        ),
        st.builds(
            lambda c: {"type": "training_completion", "version": 1, "course_ids": c},
            st.lists(st.sampled_from(list(courses)), min_size=1, max_size=2, unique=True),
        ),
        *extra_leaves,
    )
    return st.recursive(
        leaves,
        lambda children: st.builds(
            lambda kind, parts: {"type": kind, "version": 1, "criteria": parts},
            st.sampled_from(["all_of", "any_of"]),
            st.lists(children, min_size=1, max_size=3),
        ),
        max_leaves=4,
    )
