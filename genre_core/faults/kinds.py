"""The one list of fault kinds, and how the app and the comparisons group them."""

FAULT_KINDS = ("exact_duplicate", "recording_duplicate", "label_issue", "distortion", "silence",
               "unreadable", "artist_repeat")
DUPLICATE_KINDS = ("exact_duplicate", "recording_duplicate")
# Which fault a map point is coloured by when a track has several: the most damaging first.
SEVERITY = ("unreadable", "exact_duplicate", "recording_duplicate", "label_issue", "distortion", "silence",
            "artist_repeat")
