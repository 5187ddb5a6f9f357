"""The Classify page's model work behind a light import: the page imports this module, and
torch (with the model code) loads only when a recording is actually classified."""

from __future__ import annotations

from pathlib import Path

from genre_core import untrusted
from genre_core.live.timeline import format_sections  # noqa: F401  (numpy/scipy only; re-exported for the page)


class Rejected(ValueError):
    """An upload that cannot be classified: not audio, too short, or silent (a sentence)."""


def load_model(db_path: str | Path, run_id: str):
    """The run's model on the CPU, ready for `classify_upload`."""
    from genre_core.live import recording

    return recording.load_model(db_path, run_id, device="cpu")


def classify_upload(loaded, data: bytes, name: str):
    """`live.recording.Recording` of the uploaded bytes; `Rejected` with the reason otherwise."""
    from genre_core.live import recording

    try:
        return recording.classify_recording(loaded, data, name)
    except recording.RecordingError as exc:
        raise Rejected(str(exc)) from exc


def timeline_csv(frame) -> str:
    """The Classify page's download: the timeline table as CSV a spreadsheet opens safely."""
    return untrusted.cells(frame).to_csv(index=False)
