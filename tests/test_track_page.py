"""The Track page's explanations (issue 24): what `genre_core.app.hearing` renders (what the
model heard, the variants, the verdict) as plain functions, and the page through AppTest on a
copy of the fixture database with issue 24's tables planted (the real clicks in
test_browser_track)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from genre_core.analysis.listen import MASK_FLOOR
from genre_core.app import hearing, state
from genre_core.app import queries as q

APP = Path(__file__).resolve().parent.parent / "app.py"



def plant_explanations(db_path, run_id: str, *, beats: bool = True) -> dict:
    """Issue 24's tables for the toy run in the database at `db_path` (Grad-CAM beating random
    masks, or not when `beats` is False): returns the mistake (the Track page's first track:
    the first test track by id) and its planted neighbours."""
    from genre_core.analysis.faithfulness import KS
    from genre_core.store import Store

    store = Store(db_path)
    classes = list(store.run(run_id)["classes"])
    preds = store.predictions(run_id)
    attrs = store.query("SELECT * EXCLUDE (run_id) FROM attributions WHERE run_id = ?", [run_id])
    test = preds[preds.split == "test"].sort_values("track_id")
    mistake = test.iloc[0].copy()
    if mistake.label == mistake.predicted:  # make it a mistake: the page explains mistakes
        mistake.predicted = next(c for c in classes if c != mistake.label)
    template = np.asarray(attrs["values"].iloc[0], dtype=np.float32)
    shape = dict(n_bands=int(attrs.n_bands.iloc[0]), n_frames=int(attrs.n_frames.iloc[0]))

    def correct(label: str, exclude: set[str]) -> str:
        pool = preds[(preds.label == label) & ~preds.track_id.isin(exclude | {mistake.track_id})]
        return str(pool.sort_values("track_id").track_id.iloc[0])

    true_side = correct(mistake.label, set())
    predicted_side = [correct(mistake.predicted, set()), None]
    predicted_side[1] = correct(mistake.predicted, {predicted_side[0]})
    fixed = preds.set_index("track_id")
    for track, label in [(true_side, mistake.label), *[(t, mistake.predicted) for t in predicted_side]]:
        fixed.loc[track, "predicted"] = label  # the neighbours are correct
    fixed.loc[mistake.track_id, "predicted"] = mistake.predicted
    new_maps = [dict(track_id=t, method="gradcam", target=target, values=template[::-1].copy(), **shape)
                for t, target in [(true_side, mistake.label), *[(t, mistake.predicted) for t in predicted_side],
                                  (mistake.track_id, mistake.predicted), (mistake.track_id, mistake.label)]]
    keep = attrs[~attrs.set_index(["track_id", "target"]).index.isin([(m["track_id"], m["target"]) for m in new_maps])]
    faith = [dict(method="gradcam", mask=mask, k=k, measure=measure, value=value, ci_low=value - 0.1,
                  ci_high=value + 0.1, n=20)
             for k in KS for mask, values in (("explained", (0.85, 0.05, 0.45) if beats else (0.4, 0.3, 0.12)),
                                              ("random", (0.35, 0.3, 0.1)))
             for measure, value in zip(("keep_rate", "drop_in", "drop_out"), values)]
    contrast = [dict(track_id=mistake.track_id, side="true", rank=1, neighbour_id=true_side, distance=0.12)]
    contrast += [dict(track_id=mistake.track_id, side="predicted", rank=i + 1, neighbour_id=t, distance=0.2 + i / 10)
                 for i, t in enumerate(predicted_side)]
    t, p = classes.index(mistake.label), classes.index(mistake.predicted)
    variants = []
    for name, (p_true, p_pred) in {"original": (0.3, 0.6), "percussive": (0.2, 0.7), "harmonic": (0.25, 0.6),
                                   "no_bass": (0.75, 0.15), "no_treble": (0.1, 0.8)}.items():
        probs = np.full(len(classes), (1 - p_true - p_pred) / max(1, len(classes) - 2), dtype=np.float32)
        probs[t], probs[p] = p_true, p_pred
        variants.append(dict(track_id=mistake.track_id, variant=name, probs=probs.tolist()))
    store.replace_run_rows(run_id, {
        "predictions": fixed.reset_index()[list(preds.columns)],
        "attributions": pd.concat([keep, pd.DataFrame(new_maps)], ignore_index=True),
        "faithfulness": pd.DataFrame(faith), "contrast_neighbours": pd.DataFrame(contrast),
        "variant_predictions": pd.DataFrame(variants)})
    return dict(track=str(mistake.track_id), label=mistake.label, predicted=mistake.predicted,
                true_side=true_side, predicted_side=predicted_side)


def _track_page(monkeypatch, db_path, run_id: str, **session) -> AppTest:
    monkeypatch.setenv("GENRELENS_DB", str(db_path))
    at = AppTest.from_file(str(APP), default_timeout=120)
    at.session_state[state.RUN] = run_id
    for key, value in session.items():
        at.session_state[key] = value
    at.run()
    at.switch_page("pages/track.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _player_html(at: AppTest) -> str:
    frames = [node.proto for node in at.get("iframe")]
    assert len(frames) == 1
    return frames[0].srcdoc


def _texts(elements) -> str:
    """Their text as shown: AppTest gives the markdown source, dataset text escaped (untrusted.markdown)."""
    return "\n".join(e.value for e in elements).replace("\\", "")


@pytest.fixture
def toy(app_db) -> dict:
    run = q.run_row(app_db["db"], app_db["toy_run"])
    track = sorted(q.predictions(app_db["db"], app_db["toy_run"]).track_id)[0]
    cam = q.attributions(app_db["db"], app_db["toy_run"], track)["values"].iloc[0]
    return dict(db=app_db["db"], dataset_id=app_db["toy_id"], run=run, track=track, cam=cam)


# -- hearing ------------------------------------------------------------------------------------


def test_what_the_model_heard_and_ignored_are_the_track_in_two_balances(toy):
    y = hearing.track_signal(toy["db"], toy["dataset_id"], toy["track"], 22050)
    heard = hearing.heard(toy["db"], toy["dataset_id"], toy["track"], toy["cam"], representation="logmel",
                          config_json=toy["run"].config)
    assert heard.sr == 22050 and heard.keep == hearing.KEEP
    assert heard.heard.shape == heard.ignored.shape == y.shape
    # each plays one part in front and the other 10 dB down (listen.MASK_FLOOR), so together
    # they make the track at 1 + MASK_FLOOR
    np.testing.assert_allclose(heard.heard + heard.ignored, (1 + MASK_FLOOR) * y, atol=1e-4)
    assert 0 < np.sum(heard.heard ** 2) < np.sum(y ** 2)


def test_what_the_model_heard_follows_its_map(toy):
    """A map lit only in its lowest quarter of bands: what it heard lies low, what it ignored high."""
    low = np.zeros((64, 32), dtype=np.float32)
    low[:16] = 1.0
    heard = hearing.heard(toy["db"], toy["dataset_id"], toy["track"], low, representation="logmel",
                          config_json=toy["run"].config, keep=0.05)  # < the STFT bins of those bands

    def centroid(x: np.ndarray) -> float:
        power = np.abs(np.fft.rfft(x)) ** 2
        return float(np.sum(np.fft.rfftfreq(len(x), 1 / heard.sr) * power) / np.sum(power))

    assert centroid(heard.heard) < centroid(heard.ignored)
    # heard = kept + f * rest and ignored = rest + f * kept (f = MASK_FLOOR): the parts themselves
    f = MASK_FLOOR
    kept, rest = (heard.heard - f * heard.ignored) / (1 - f * f), (heard.ignored - f * heard.heard) / (1 - f * f)
    assert centroid(kept) < 0.5 * centroid(rest)


def test_nothing_is_heard_from_a_map_over_coefficients(toy):
    assert hearing.heard(toy["db"], toy["dataset_id"], toy["track"], toy["cam"], representation="mfcc",
                         config_json=None) is None


def test_the_player_media_of_a_track(toy, app_db):
    media = hearing.player_media(toy["db"], toy["dataset_id"], toy["track"], "logmel", toy["run"].config)
    assert media.audio.startswith("data:audio/wav;base64,") and media.spectrogram.startswith("data:image/png")
    assert abs(media.duration_s - 4.0) < 0.01
    assert len(media.freqs_hz) == 128 and np.all(np.diff(media.freqs_hz) > 0)
    broken = q.search_tracks(app_db["db"], app_db["ten_runs"][0], "", None)
    unreadable = broken[broken.status != "ok"].track_id.iloc[0]
    assert hearing.player_media(toy["db"], app_db["ten_id"], unreadable) is None


def test_the_variants_of_a_track(toy):
    clips, sr = hearing.variants_audio(toy["db"], toy["dataset_id"], toy["track"])
    y = hearing.track_signal(toy["db"], toy["dataset_id"], toy["track"], sr)
    assert sr == 22050 and set(clips) == {"percussive", "harmonic", "no_bass", "no_treble"}  # not a demo track
    assert all(c.shape == y.shape for c in clips.values())
    np.testing.assert_allclose(clips["percussive"] + clips["harmonic"], y, atol=1e-3)
    assert set(hearing.variant_labels()) >= set(clips)


def test_the_faithfulness_verdict(writable_app_db, app_db):
    assert hearing.faithfulness_verdict(q.faithfulness(app_db["db"], app_db["toy_run"]))[0] is None
    plant_explanations(writable_app_db, app_db["toy_run"], beats=True)
    beats, sentence = hearing.faithfulness_verdict(q.faithfulness(writable_app_db, app_db["toy_run"]))
    assert beats is True and "beats random masks" in sentence
    assert hearing.faithfulness_verdict(q.faithfulness(writable_app_db, app_db["toy_run"]), "occlusion")[0] is None
    plant_explanations(writable_app_db, app_db["toy_run"], beats=False)
    beats, sentence = hearing.faithfulness_verdict(q.faithfulness(writable_app_db, app_db["toy_run"]))
    assert beats is False and "does not beat random masks" in sentence


def test_mind_change_from_the_stored_variants(writable_app_db, app_db):
    planted = plant_explanations(writable_app_db, app_db["toy_run"])
    classes = list(q.run_row(writable_app_db, app_db["toy_run"]).classes)
    stored = q.variant_predictions(writable_app_db, app_db["toy_run"], planted["track"])
    original = hearing.class_probs(q.track_probs(writable_app_db, app_db["toy_run"], planted["track"]), classes)
    assert original.shape == (len(classes),) and abs(original.sum() - 1) < 1e-4
    sentence = hearing.mind_change(stored, original, classes, true=planted["label"], predicted=planted["predicted"])
    assert sentence.startswith("Without the bass") and planted["label"] in sentence
    assert f"(the full track: {planted['predicted']} 0.60, {planted['label']} 0.30)" in sentence  # the stored original
    assert hearing.mind_change(stored, original, classes, true=planted["label"], predicted=planted["label"]) is None


# -- the page ------------------------------------------------------------------------------------


def test_the_track_page_explains_a_mistake(monkeypatch, writable_app_db, app_db):
    planted = plant_explanations(writable_app_db, app_db["toy_run"])
    at = _track_page(monkeypatch, writable_app_db, app_db["toy_run"])
    assert _texts(at.title) == f"Track {planted['track']}"
    html = _player_html(at)
    assert "Loop the surest 3 s" in html and f"Loop the window most against {planted['label']}" in html
    assert f"predicted genre: {planted['predicted']}" in html and f"true genre: {planted['label']}" in html
    heads = [h.value for h in at.subheader]
    for head in ("What the model listened to", "What the model heard", "What changes its mind", "Closest correct tracks"):
        assert head in heads, heads
    assert "beats random masks" in _texts(at.success)
    assert "Without the bass" in _texts(at.markdown)  # the mind_change sentence
    text = _texts(at.markdown)
    for track in (planted["true_side"], *planted["predicted_side"]):
        assert track in text
    assert len(at.get("image")) == 3  # a Grad-CAM thumbnail beside each closest correct track


def test_a_map_that_does_not_beat_random_masks_is_not_called_an_explanation(monkeypatch, writable_app_db, app_db):
    plant_explanations(writable_app_db, app_db["toy_run"], beats=False)
    at = _track_page(monkeypatch, writable_app_db, app_db["toy_run"])
    heads = [h.value for h in at.subheader]
    assert "What the model heard" not in heads and "Listening to the map" in heads
    assert "does not beat random masks" in _texts(at.warning)
    labels = _texts(at.markdown)
    assert "The map's top 25%" in labels and "What the model heard" not in labels
    assert "not established" in _texts(at.caption)


def test_presentation_mode_cuts_no_section(monkeypatch, writable_app_db, app_db):
    plant_explanations(writable_app_db, app_db["toy_run"])
    plain = _track_page(monkeypatch, writable_app_db, app_db["toy_run"])
    shown = _track_page(monkeypatch, writable_app_db, app_db["toy_run"], **{state.PRESENTATION: True})
    assert [h.value for h in shown.subheader] == [h.value for h in plain.subheader]
    assert len(shown.get("audio")) == len(plain.get("audio")) > 3
    assert len(shown.get("image")) == len(plain.get("image")) == 3
    assert "font: 19px" in _player_html(shown) and "font: 14px" in _player_html(plain)


def test_a_run_without_explanations_says_why(monkeypatch, app_db):
    at = _track_page(monkeypatch, app_db["db"], app_db["imported_run"],
                     **{state.TRACK: (app_db["toy_id"], "high/high_00")})
    assert "No explanations" in _texts(at.info)
    heads = [h.value for h in at.subheader]
    assert "What the model heard" not in heads and "Closest correct tracks" not in heads
    assert "Loop the" not in _player_html(at)  # no windows of its own to loop
    assert "nan" not in _texts(at.caption)
