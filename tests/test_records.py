"""Run records: what counts as a configuration's settled run on a model."""

from __future__ import annotations

import dataclasses

from jfhpo.records import Phase, RunRecord, StopReason

RUN = RunRecord(0, {"lr": 1e-4}, "big", Phase.SEARCH, steps_done=90, score=0.7)


def test_finished_at_full_budget_on_its_model() -> None:
    assert RUN.finished_at("big", 90)
    assert RUN.finished_at("big", 60)  # reached more than asked


def test_not_finished_short_elsewhere_busy_failed_or_stopped() -> None:
    assert not RUN.finished_at("small", 90)
    assert not RUN.finished_at("big", 120)
    assert not dataclasses.replace(RUN, pending_steps=120).finished_at("big", 90)
    assert not dataclasses.replace(RUN, failed=True).finished_at("big", 90)
    stop = StopReason(rule="kl_growth", message="KL grew")
    assert not dataclasses.replace(RUN, stopped=stop).finished_at("big", 90)
