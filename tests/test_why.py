"""One sentence of why (genre_core.analysis.why): said from findings that passed their tests,
never invented."""

from __future__ import annotations

import pandas as pd

from genre_core.analysis.why import pair_why, track_why


def _slices(*, significant: bool = True) -> pd.DataFrame:
    """The demo's pattern: 4 disco test tracks, one artist unseen in training, all wrong."""
    disco = ["disco.00020", "disco.00021", "disco.00022", "disco.00023"]
    return pd.DataFrame([
        dict(rank=1, description="genre disco", same_tracks_as=["by Mirrorball Connection, an artist absent from training"],
             n=4, errors=4, accuracy=0.0, rest_accuracy=0.89, run_accuracy=0.82, p_value=0.00059, q_value=0.0248,
             significant=significant, split="test", track_ids=disco),
        dict(rank=2, description="tempo 70–95 bpm", same_tracks_as=[], n=12, errors=3, accuracy=0.75,
             rest_accuracy=0.84, run_accuracy=0.82, p_value=0.4, q_value=0.9, significant=False, split="test",
             track_ids=["blues.00001", "disco.00020"]),
    ])


def _concepts(significant: bool) -> pd.DataFrame:
    return pd.DataFrame([dict(concept="fast tempo", genre="pop", direction="toward", q=0.01, significant=significant),
                         dict(concept="bright", genre="jazz", direction="toward", q=0.02, significant=True)])


def test_a_mistake_in_a_significant_slice_is_told_its_pattern_with_its_test():
    text = track_why("disco.00021", true="disco", predicted="pop", slices=_slices())
    assert text.startswith("It is one of a pattern: all 4 test tracks of the slice “genre disco”")
    assert "Mirrorball Connection, an artist absent from training" in text
    assert "p = 0.00059" in text and "q = 0.025" in text and "calls this one pop" in text


def test_nothing_is_said_without_a_finding_that_passed():
    assert track_why("disco.00021", true="disco", predicted="pop", slices=_slices(significant=False)) is None
    assert track_why("disco.00021", true="disco", predicted="pop", slices=_slices(significant=False),
                     concepts=_concepts(significant=False)) is None
    assert track_why("blues.00001", true="blues", predicted="jazz", slices=_slices()) is None  # not in the pattern
    assert track_why("disco.00021", true="disco", predicted="disco", slices=_slices()) is None  # right: no why


def test_concepts_and_variants_join_only_when_they_passed():
    text = track_why("rock.00011", true="rock", predicted="pop", slices=_slices(), concepts=_concepts(True),
                     variant_sentence="Without the treble (above 4 kHz) the model hears rock 0.74, not pop 0.07.")
    assert text == ("The model leans toward pop on fast tempo (TCAV, q = 0.01). Without the treble (above 4 kHz) "
                    "the model hears rock 0.74, not pop 0.07.")


def test_a_confused_pair_is_told_the_pattern_covering_its_tracks():
    cell = ["disco.00020", "disco.00021", "disco.00022", "disco.00023"]
    text = pair_why("disco", "pop", cell, slices=_slices())
    assert text.startswith("All 4 disco tracks called pop belong to one pattern: all 4 test tracks of the slice “genre disco”")
    assert pair_why("disco", "pop", cell, slices=_slices(significant=False)) is None
    assert pair_why("blues", "jazz", ["blues.00001"], slices=_slices()) is None


def test_a_concept_present_in_the_track_is_said_only_when_it_pushes_it_to_the_predicted_genre():
    pushes = pd.DataFrame([dict(concept="fast tempo", derivative=0.4, agreement=1.0, presence=0.9,
                                pushes_to_predicted=True),
                           dict(concept="bright", derivative=0.1, agreement=0.5, presence=0.2, pushes_to_predicted=False)])
    text = track_why("rock.00011", true="rock", predicted="pop", slices=None, pushes=pushes)
    assert text == "In this track, fast tempo pushes it toward pop rather than rock (TCAV, concepts significant for these genres)."
    assert track_why("rock.00011", true="rock", predicted="pop", slices=None, pushes=pushes.iloc[1:]) is None
