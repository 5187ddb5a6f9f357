import pytest

from genre_core.train.sweep import load_sweep, run_sweep


def test_sweep_runs_every_cell_and_tags_runs(toy_store, tmp_path):
    path = tmp_path / "s.toml"
    path.write_text(
        'dataset = "toy"\nmodels = ["cnn_small", "logreg"]\nrepresentations = ["logmel", "mfcc"]\n'
        "[augment]\nnone = {}\ngain = {gain_db = 3.0, noise_snr_db = 40.0}\n"
        "[train]\nepochs = 1\ntiny = true\nbatch_size = 8\n"
    )
    spec = load_sweep(path)
    # cnn_small: 2 representations x 2 augmentations; logreg only its own input x 2.
    assert len(spec.cells()) == 6
    table = run_sweep(toy_store, spec, progress=False)
    assert table.run_id.notna().all(), table.error.tolist()
    runs = toy_store.query("SELECT model, representation FROM runs WHERE sweep = ?", [table.sweep[0]])
    assert sorted(runs.representation.unique()) == ["handcrafted", "logmel", "mfcc"]
    assert (table.ci_low <= table.accuracy).all() and (table.accuracy <= table.ci_high).all()


def test_bad_sweep_configs_are_clear_errors(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text('{"dataset": "toy", "models": ["cnn"], "representations": ["cqt"]}')
    with pytest.raises(ValueError, match="unknown representation 'cqt'"):
        load_sweep(path)
    path.write_text('{"models": ["cnn"]}')
    with pytest.raises(ValueError, match="missing 'dataset'"):
        load_sweep(path)
    path.write_text('{"dataset": "toy", "models": ["nope"]}')
    with pytest.raises(ValueError, match="unknown model 'nope'"):
        load_sweep(path)


def test_reference_must_be_a_sweep_model_and_adds_mcnemar_against_it(tmp_path):
    import numpy as np
    import pandas as pd

    from genre_core.train.sweep import versus_reference

    path = tmp_path / "ref.json"
    path.write_text('{"dataset": "toy", "models": ["cnn"], "reference": "mlp"}')
    with pytest.raises(ValueError, match="reference 'mlp' is not one of the sweep's models"):
        load_sweep(path)

    class Store:  # test predictions: the reference gets 10 of 10 right, "worse" 0, "same" 10
        def predictions(self, run_id, split):
            right = {"ref": 10, "worse": 0, "same": 10}[run_id]
            return pd.DataFrame({"track_id": [f"t{i}" for i in range(10)], "label": "a",
                                 "predicted": ["a"] * right + ["b"] * (10 - right)})

    table = pd.DataFrame({"model": ["base", "worse", "same", "broken"], "run_id": ["ref", "worse", "same", None],
                          "representation": "logmel", "augment": "none"})
    p = versus_reference(Store(), table, "base").mcnemar_p.to_numpy()
    assert np.isnan(p[0]) and p[1] < 0.01 and p[2] == 1.0 and np.isnan(p[3])
