"""What the app may open: the databases its operator configured, and audio files inside a
registered dataset root. The app may be opened by people who are not its operator, so nothing
a visitor sends (a sidebar choice, a query parameter, a session key) names a path, and every
refusal reads the same, saying nothing about which other paths exist.

Configuration (server side only), in this order, without repeats:
- `$GENRELENS_DB`: one database, the default choice;
- `$GENRELENS_DBS`: more databases, separated by os.pathsep (":" on Linux and macOS);
- `databases = ["a.duckdb", ...]` in .streamlit/secrets.toml (passed in by app.py, since
  genre_core never imports streamlit).
With none of them set, the one database is data/genrelens.duckdb (what `make demo` writes).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

from genre_core import audio
from genre_core.store import DEFAULT_DB

# Every HTTP response of the app carries this (server.py): images, audio, fonts, frames and
# connections only from the app's own origin, plus the data:/blob: URLs its pages make. Scripts
# and styles stay as Streamlit and plotly need them ('unsafe-inline', 'unsafe-eval').
CONTENT_SECURITY_POLICY = "; ".join([
    "default-src 'self'",
    "script-src 'self' 'unsafe-inline' 'unsafe-eval' blob:",
    "style-src 'self' 'unsafe-inline'",
    "img-src 'self' data: blob:",
    "media-src 'self' data: blob:",
    "font-src 'self' data:",
    "connect-src 'self'",
    "frame-src 'self' data: blob:",
    "worker-src 'self' blob:",
    "object-src 'none'",
    "base-uri 'self'",
    "form-action 'self'",
])
DB_ENV = "GENRELENS_DB"
DBS_ENV = "GENRELENS_DBS"

# One message for "not in the list", "no such file", "not a GenreLens database" and "corrupt":
# different messages would let a visitor probe which server paths exist.
REFUSED = ("This database cannot be opened here. Choose one in the sidebar; whoever runs this app "
           "decides which databases it offers (GENRELENS_DB, GENRELENS_DBS or `databases` in "
           ".streamlit/secrets.toml) and fills the default one with `make demo`.")


def configured_databases(secret_paths: Iterable[str] = ()) -> list[Path]:
    """The databases the operator allows, as absolute paths, the default first."""
    listed = [os.environ.get(DB_ENV, "")]
    listed += os.environ.get(DBS_ENV, "").split(os.pathsep)
    listed += [str(p) for p in secret_paths]
    paths = [Path(os.path.abspath(p)) for p in listed if p and p.strip()]
    return list(dict.fromkeys(paths)) or [Path(os.path.abspath(DEFAULT_DB))]


def database_labels(paths: list[Path]) -> dict[str, Path]:
    """{label: path}: the file name, or `parent/name` where two files share a name (a visitor
    sees labels only, never where the files live)."""
    names = [p.name for p in paths]
    return {(p.name if names.count(p.name) == 1 else f"{p.parent.name}/{p.name}"): p for p in paths}


def allowed_database(labels: dict[str, Path], requested: str | None) -> Path | None:
    """The configured database labelled `requested`, else None (refuse). Only labels match:
    a path, even that of a configured file, is not a label."""
    return labels.get(requested) if isinstance(requested, str) else None


def _inside(path: str, root: str) -> bool:
    return os.path.commonpath([path, root]) == root


def servable_audio(path: str | Path, root: str | Path | None) -> Path | None:
    """The real path of `path` when the app may serve it, else None.

    Allowed: after resolving symlinks (both sides), a regular file inside the dataset's
    registered `root`, with an audio extension and a header that probes as sane audio. So a
    database row pointing at /etc/passwd, a text file named secret.wav, or a symlink inside
    the corpus that leads out of it serves nothing. Returning the resolved path means the
    file checked is the file read, even if the link changes afterwards.
    """
    if not path or not root or not os.path.isabs(str(root)):
        return None  # a relative root would mean "wherever the app was started"
    real, base = os.path.realpath(path), os.path.realpath(root)
    if os.path.dirname(base) == base or not _inside(real, base):
        return None  # a root of "/" would confine nothing
    if Path(real).suffix.lower() not in audio.AUDIO_EXTENSIONS or not os.path.isfile(real):
        return None
    try:
        audio.check_header(audio.probe(real))
    except (audio.AudioError, OSError):
        return None
    return Path(real)
