"""The kinds of dataset fault: the one list every module (detection, the known list, the synthetic
corpus, the app) takes its words from, and how they group."""

from __future__ import annotations

# Every value of faults.kind, in the order summaries list them.
FAULT_KINDS = ("exact_duplicate", "recording_duplicate", "label_issue", "not_music", "distortion", "silence",
               "unreadable", "artist_repeat")
# Both mean "the same audio twice": a byte-identical file, or the same recording re-encoded.
DUPLICATE_KINDS = ("exact_duplicate", "recording_duplicate")
# The kinds one clip can carry, which the synthetic corpus plants and lists in faults_truth.csv;
# artist repetition is a property of the metadata of many clips, not of one clip.
CLIP_KINDS = tuple(k for k in FAULT_KINDS if k != "artist_repeat")
# What the synthetic corpus plants: the clip kinds, and versions (one composition played again by
# another artist), which no detector looks for yet (a chroma matcher was measured too imprecise:
# docs/datasets.md), so Known vs detected lists them as not looked for.
PLANTED_KINDS = CLIP_KINDS + ("version",)
# Which fault a track is shown by when it has several: the most damaging first.
SEVERITY = ("unreadable", "exact_duplicate", "recording_duplicate", "not_music", "label_issue", "distortion",
            "silence", "artist_repeat")


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

# Each kind in plain words, for people who never saw its internal name: (what it is, why it matters).
# The HTML report's fault table says these; say them wherever a lay reader meets a kind.
FAULT_WORDS = {
    "exact_duplicate": ("The same file twice",
                        "a copy in training and one in the test lets a model score by memory, not by ear"),
    "recording_duplicate": ("The same recording twice",
                            "re-encoded or trimmed copies of one song: the same risk as an exact copy"),
    "version": ("Possibly the same song played again",
                "another recording of one composition (a cover, a live take): a model may recognise the "
                "song rather than hear the genre when one is in training and the other in the test"),
    "not_music": ("Probably not music", "speech, noise or a test tone filed under a genre teaches a model nothing "
                  "about that genre"),
    "label_issue": ("Probably filed under the wrong genre",
                    "models trained without it hear another genre in it: a right answer may be scored wrong"),
    "distortion": ("Damaged sound", "clipping, dropouts or a cut-off treble: a model may learn the damage"),
    "silence": ("Silent file", "nothing to hear, so nothing to learn from"),
    "unreadable": ("File that cannot be played", "it cannot be decoded, so it is left out"),
    "artist_repeat": ("One artist fills a genre", "a model can learn the artist's sound instead of the genre's"),
}


def fault_words(kind: str) -> tuple[str, str]:
    """(what a fault of `kind` is, why it matters) in plain words; an unknown kind (a newer
    database) reads as its name with spaces and no reason."""
    return FAULT_WORDS.get(kind, (str(kind).replace("_", " ").capitalize(), ""))
