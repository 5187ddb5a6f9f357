"""The kinds of dataset fault: the one list every module (detection, the known list, the synthetic
corpus, the app) takes its words from, and how they group."""

from __future__ import annotations

# Every value of faults.kind, in the order summaries list them.
FAULT_KINDS = ("exact_duplicate", "recording_duplicate", "label_issue", "distortion", "silence",
               "unreadable", "artist_repeat")
# Both mean "the same audio twice": a byte-identical file, or the same recording re-encoded.
DUPLICATE_KINDS = ("exact_duplicate", "recording_duplicate")
# The kinds one clip can carry, which the synthetic corpus plants and lists in faults_truth.csv;
# artist repetition is a property of the metadata of many clips, not of one clip.
CLIP_KINDS = tuple(k for k in FAULT_KINDS if k != "artist_repeat")
# Which fault a track is shown by when it has several: the most damaging first.
SEVERITY = ("unreadable", "exact_duplicate", "recording_duplicate", "label_issue", "distortion", "silence",
            "artist_repeat")


def fault_family(kind: str) -> str:
    """'duplicate' for either duplicate kind (a published exact repetition may be detected as a
    recording duplicate when the files differ in a byte or a sample), else the kind itself."""
    return "duplicate" if kind in DUPLICATE_KINDS else kind

# An artist filling more than this share of a genre's tracks is an artist_repeat fault: a model
# can then learn the artist's sound rather than the genre's (Sturm's point about GTZAN).
ARTIST_MAX_SHARE = 0.25


def artist_rule(max_share: float = ARTIST_MAX_SHARE) -> str:
    """The artist_repeat rule in words, as the Faults page states it."""
    return (f"an artist is flagged when their tracks are more than {max_share:.0%} of one genre's tracks "
            "(a model could then learn the artist rather than the genre)")
