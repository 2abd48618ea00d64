"""The core conformance table (checks_core) against the virtual card driven in process."""

from __future__ import annotations

import pytest
from cardmod_support import card_data
from incard import InProcessConnection

from minidriver.cardmod import checks_core
from minidriver.cardmod.checks import format_table, run_checks


@pytest.mark.parametrize("destructive", [False, True])
def test_core_rows_pass_on_the_virtual_card(destructive: bool) -> None:
    card = InProcessConnection()
    results = run_checks(checks_core.CHECKS, lambda: card_data(card), destructive=destructive)
    table = format_table(results)
    assert all(r.ok for r in results), table
    ran = [r for r in results if not r.skipped]
    assert len(ran) >= 100, table
    assert any(r.function == "CardAuthenticatePin" and "blocked" in r.case for r in results) == destructive


def test_every_core_row_names_a_real_entry_point() -> None:
    from minidriver.cardmod.context import FUNCTION_TABLE

    names = {pfn.removeprefix("pfn") for pfn in FUNCTION_TABLE} | {"CardAcquireContext"}
    assert {c.function for c in checks_core.CHECKS} <= names
