"""`python -m training demo` on a small corpus: one protocol for every model, an ensemble, the
deep model analysed, faults found, and a second run that redoes nothing."""

from __future__ import annotations

import pytest

from genre_core.runs.demo import DEMO_NAME, DemoConfig, run_demo
from genre_core.store import open_store


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo")
    store = open_store(root / "genrelens.duckdb")
    config = DemoConfig(root=root / "demo", per_genre=4, seconds=6.0, epochs=1, device="cpu")
    lines: list[str] = []
    summary = run_demo(store, config, log=lines.append)
    return store, config, lines, summary


def test_every_demo_model_shares_one_split(demo):
    store, config, _, _ = demo
    runs = store.complete_runs(DEMO_NAME)
    assert sorted(runs.model) == sorted([*config.models, "ensemble", config.multilabel])
    tasks = [store.run(r)["config"].get("task", "single") for r in runs.run_id]
    assert tasks.count("multilabel") == 1  # the Multi-label page has a run to show
    assert set(runs.split) == {config.split}
    tests = {r: frozenset(store.predictions(r, "test").track_id) for r in runs.run_id}
    assert len(set(tests.values())) == 1  # the same test tracks: the leaderboard compares like with like


def test_the_deep_model_is_analysed_and_faults_are_stored(demo):
    store, config, lines, summary = demo
    cnn = store.complete_runs(DEMO_NAME, config.model).run_id.iloc[-1]
    assert len(store.projections(cnn))
    dataset_id = int(store.dataset(DEMO_NAME)["dataset_id"])
    rows = store.fault_rows(dataset_id)
    assert {"exact_duplicate", "label_issue"} <= set(rows.kind[rows.source == "detected"])  # planted copies; the quick label check ran
    assert {"exact_duplicate", "label_issue"} <= set(rows.kind[rows.source == "known"])  # what it planted, to score them by
    assert summary.startswith("demo ready in") and "train cnn" in summary
    assert any(line.startswith("ensemble run") for line in lines)


def test_a_second_demo_redoes_nothing(demo):
    store, config, _, _ = demo
    before = set(store.complete_runs(DEMO_NAME).run_id)
    lines: list[str] = []
    run_demo(store, config, log=lines.append)
    assert set(store.complete_runs(DEMO_NAME).run_id) == before
    assert sum("already complete" in line for line in lines) == len(config.models) + 2  # + ensemble, multi-label


def test_the_deep_models_failure_slices_are_stored_and_said(demo):
    store, config, lines, _ = demo
    cnn = store.complete_runs(DEMO_NAME, config.model).run_id.iloc[-1]
    tests = set(store.predictions(cnn, "test").track_id)
    slices = store.failure_slices(cnn)
    assert any(line.startswith("analyzed run") and "failure slices" in line for line in lines)
    assert all(set(ids) <= tests and len(ids) >= 3 for ids in slices.track_ids)
