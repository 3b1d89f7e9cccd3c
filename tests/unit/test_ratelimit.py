"""Announced pull budgets (regshift.ratelimit): header parsing and the reserve."""

from __future__ import annotations

import pytest

from regshift.errors import RateLimitReserve
from regshift.ratelimit import PullBudget, parse_budget


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("76;w=21600", (76, 21600)),
        ("100;w=21600", (100, 21600)),
        ("0;w=60", (0, 60)),
        ("76", (76, None)),
        (" 5 ; w = 10", (5, 10)),
        ("10;w=60, 100;w=3600", (10, 60)),
        ("", None),
        (None, None),
        ("many", None),
        ("-1;w=5", None),
    ],
)
def test_parse_budget(value: str | None, expected: tuple[int, int | None] | None) -> None:
    assert parse_budget(value) == expected


def test_budget_stops_at_the_reserve_and_only_there() -> None:
    budget = PullBudget("registry-1.docker.io", reserve=3, slow_below=2)
    with budget.pull("GET a"):  # nothing announced yet: free
        budget.observe({"ratelimit-remaining": "6;w=21600", "ratelimit-limit": "100;w=21600"})
    assert not budget.low
    budget.observe({"ratelimit-remaining": "4;w=21600"})
    assert budget.low
    with budget.pull("GET b"):
        budget.observe({"ratelimit-remaining": "3;w=21600"})
    with (
        pytest.raises(RateLimitReserve, match=r"3 of 100 pulls left per 21600 s"),
        budget.pull("GET c"),
    ):
        pass
    budget.observe({})  # an answer without the headers changes nothing
    assert budget.remaining == 3
