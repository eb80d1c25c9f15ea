"""bench/optimizer/asktell_suite.py: the suite's problems through AskTell, run as a user runs it
on a slice (two problems, two methods, one seed), and the table it writes."""

from __future__ import annotations

from tests.bench.conftest import TableRun


def test_the_held_out_ask_tell_table_runs_and_scores_every_answer(ask_tell_table: TableRun) -> None:
    rows, table = ask_tell_table("asktell_suite.py", [
        "--seeds", "1", "--budgets", "3", "--problems", "synthetic-b0.5", "hartmann-mf",
        "--methods", "hyperband", "jfhpo"])
    assert {(row["problem"], row["method"]) for row in rows} == {
        (p, m) for p in ("synthetic-b0.5", "hartmann-mf") for m in ("hyperband", "jfhpo")}
    assert "held out" in table and "## hartmann-mf, budget 3" in table
