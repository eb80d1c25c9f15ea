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


def test_a_curve_that_fell_most_of_its_range_after_its_peak_collapsed() -> None:
    rising = ((10, 0.50), (30, 0.62), (60, 0.69), (90, 0.70))
    noisy = ((10, 0.50), (30, 0.66), (60, 0.70), (90, 0.68))
    fell = ((10, 0.55), (30, 0.62), (60, 0.30), (90, 0.02))
    assert not dataclasses.replace(RUN, curve=rising, score=0.70).collapsed()
    assert not dataclasses.replace(RUN, curve=noisy, score=0.68).collapsed()
    assert dataclasses.replace(RUN, curve=fell, score=0.02).collapsed()
    assert not dataclasses.replace(RUN, curve=(), score=0.02).collapsed()  # one point: no curve


def test_a_collapse_counts_as_a_divergence_only_after_the_curve_rose() -> None:
    rose_fell = ((10, 0.55), (30, 0.62), (60, 0.30), (90, 0.02))
    only_fell = ((10, -0.01), (30, -0.03), (60, -0.05), (90, -0.07))
    assert dataclasses.replace(RUN, curve=rose_fell, score=0.02).rose_and_collapsed()
    only = dataclasses.replace(RUN, curve=only_fell, score=-0.07)
    assert only.collapsed() and not only.rose_and_collapsed()


def test_end_score_averages_the_last_three_evaluations_in_the_final_third() -> None:
    curve = ((10, 0.20), (50, 0.40), (70, 0.60), (80, 0.66), (90, 0.72))
    run = dataclasses.replace(RUN, curve=curve, score=0.72)
    assert abs((run.end_score() or 0.0) - (0.60 + 0.66 + 0.72) / 3) < 1e-12


def test_end_score_is_the_final_score_without_other_evaluations_near_the_end() -> None:
    sparse = ((10, 0.30), (30, 0.50), (90, 0.70))  # 30 is before the final third (60..90)
    assert dataclasses.replace(RUN, curve=sparse, score=0.70).end_score() == 0.70
    assert dataclasses.replace(RUN, curve=(), score=0.70).end_score() == 0.70
    assert dataclasses.replace(RUN, score=None).end_score() is None


def test_end_score_skips_non_finite_evaluations() -> None:
    curve = ((70, float("nan")), (80, 0.60), (90, 0.70))
    run = dataclasses.replace(RUN, curve=curve, score=0.70)
    assert abs((run.end_score() or 0.0) - 0.65) < 1e-12


def test_end_score_with_one_other_evaluation_near_the_end_averages_two() -> None:
    curve = ((30, 0.40), (80, 0.60), (90, 0.70))
    run = dataclasses.replace(RUN, curve=curve, score=0.70)
    assert abs((run.end_score() or 0.0) - 0.65) < 1e-12
