"""Deep links: the app's view as short, readable URL query parameters, and back.

A view is the page (Streamlit's URL path, `/track`) plus a few parameters:

    ?run=RUN                          every page: the run shown (db=LABEL when several databases)
    /confusion?true=blues&pred=rock   the clicked cell (split=val when not the test tracks)
    /track?track=blues.00012&t=42     the track, and where its player starts (s, or m:ss)
    /map?proj=umap&colour=correct-wrong&sel=ID~ID   projection, colouring, the selected tracks
    /map?view=trajectory&track=ID     segments or one track's trajectory instead of the tracks
    /map?proj=tags&tx=guitar&ty=electronic   the tag axes: musicnn tags across (tx) and up (ty)
    /faults?view=duplicates&group=G7  the view and the duplicate group (track=ID: another view's finding)
    /story?step=3                     the story's step

Streamlit-free, so it is tested as plain functions; page_links.py reads and writes
st.query_params through it. Every value is untrusted: `read` keeps known keys with short,
printable values only, and whether a run, a track or a genre exists is for the page to check
against the database (`choose`), which says so in one line and falls back to its default view.
No value is ever used as a path: each one is compared with what the database holds.
"""

from __future__ import annotations

import math
import re
from typing import Iterable, Mapping

MAX_VALUE = 2000  # characters of one value (a selection of MAX_SELECTION ids); longer ones are dropped
MAX_SELECTION = 100  # track ids a map selection keeps in its link; a larger one is not linked
MAX_SECONDS = 24 * 3600.0
SHOWN = 40  # characters of an unknown value quoted back in a notice

# The parameters each page owns; "db" and "run" belong to every page.
COMMON = ("db", "run")
PAGE_KEYS = {
    "confusion": ("split", "true", "pred"),
    "track": ("track", "t"),
    "map": ("proj", "colour", "sel", "view", "track", "tx", "ty", "pts"),
    "faults": ("view", "group", "track"),
    "story": ("step",),
}
KEYS = COMMON + tuple(k for keys in PAGE_KEYS.values() for k in keys)
SOFT = ("t",)  # written by the player itself as it plays (see player_page); never a reason to re-read a link

_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069]")


def clean(value) -> str | None:
    """A parameter's value as text, or None when it is empty, too long or holds control or
    bidi characters (nothing in this app's data needs them in a link)."""
    if isinstance(value, (list, tuple)):
        value = value[-1] if value else None
    if value is None:
        return None
    text = str(value).strip()
    if not text or len(text) > MAX_VALUE or _UNPRINTABLE.search(text):
        return None
    return text


def read(params: Mapping[str, object]) -> dict[str, str]:
    """The known parameters of a URL with usable values (see `clean`); the rest are ignored."""
    found = {key: clean(params.get(key)) for key in KEYS if key in params}
    return {key: value for key, value in found.items() if value is not None}


def view(run: str | None, page: Mapping[str, object] | None = None, *, db: str | None = None,
         defaults: Mapping[str, object] | None = None) -> dict[str, str]:
    """The parameters to write for a view: db, run, then the page's own, in that order; None,
    empty and default values left out, so a URL stays as short as the view allows."""
    out = {"db": db, "run": run, **dict(page or {})}
    defaults = dict(defaults or {})
    return {k: str(v) for k, v in out.items()
            if v is not None and str(v) != "" and not (k in defaults and str(v) == str(defaults[k]))}


def _hard(params: Mapping[str, object]) -> dict[str, str]:
    return {k: v for k, v in read(params).items() if k not in SOFT}


def came_from_outside(params: Mapping[str, object], written: Mapping[str, str] | None) -> bool:
    """Whether the URL's parameters are news to this session: a link just opened, an address
    typed, browser history, rather than what the session last wrote itself (`written`). `t`
    does not count: the player moves it as it plays. No parameters (a page switch clears
    them) are no news either."""
    hard = _hard(params)
    return bool(hard) and (written is None or hard != _hard(written))


def differs(params: Mapping[str, object], view: Mapping[str, str]) -> bool:
    """Whether the URL's parameters show another view than `view` (`t` aside)."""
    return _hard(params) != _hard(view)


def for_page(link: Mapping[str, str] | None, page: str) -> dict[str, str]:
    """The parameters of `link` that belong to `page` (a PAGE_KEYS name)."""
    return {k: v for k, v in (link or {}).items() if k in PAGE_KEYS.get(page, ())}


# -- values --------------------------------------------------------------------------------


def shown(value: str) -> str:
    """An unknown value as quoted in a notice: printable, at most SHOWN characters."""
    text = _UNPRINTABLE.sub("", str(value))
    return text if len(text) <= SHOWN else text[: SHOWN - 1] + "…"


def notice(what: str, value: str, fallback: str) -> str:
    """The one line shown when a link names something that is not there (plain text)."""
    return f"This link asks for {what} “{shown(value)}”, which is not here; showing {fallback} instead."


def choose(value: str | None, options: Iterable, what: str, fallback: str) -> tuple[str | None, str | None]:
    """(value, None) when `value` is one of `options`; (None, notice) when it is not; (None,
    None) when there is no value."""
    if value is None:
        return None, None
    if value in {str(o) for o in options}:
        return value, None
    return None, notice(what, value, fallback)


def seconds(value: str | None) -> float | None:
    """A time in a track from a link: "42", "42.5" or "1:23" (m:ss) -> seconds; None when it is
    not a finite time between 0 and a day."""
    if value is None:
        return None
    parts = str(value).strip().split(":")
    if len(parts) > 2 or not all(re.fullmatch(r"\d+(\.\d+)?", p) for p in parts):
        return None
    t = float(parts[-1]) + (60 * float(parts[0]) if len(parts) == 2 else 0.0)
    return t if math.isfinite(t) and t <= MAX_SECONDS else None


def format_seconds(t: float) -> str:
    """Seconds as a link writes them: "42", "42.5"."""
    return f"{round(t, 1):g}"


def whole(value: str | None, low: int, high: int) -> int | None:
    """An integer parameter within [low, high], else None."""
    if value is None or not re.fullmatch(r"\d{1,6}", value):
        return None
    n = int(value)
    return n if low <= n <= high else None


def slug(name: str) -> str:
    """A label as a URL word: "Distortion & silence" -> "distortion-silence"."""
    return "-".join(re.findall(r"[a-z0-9]+", name.lower()))


def from_slug(value: str | None, names: Iterable[str]) -> str | None:
    """The name among `names` whose slug is `value`, else None."""
    return next((n for n in names if value is not None and slug(n) == value), None)


SEP = "~"  # between the ids of a selection: a URL carries it as it is (a comma becomes %2C)


def join_ids(track_ids: Iterable[str]) -> str | None:
    """Track ids as one parameter value (SEP between them; "%" and SEP inside an id escaped),
    or None for more than MAX_SELECTION ids, which a link does not carry."""
    ids = list(track_ids)
    if not ids or len(ids) > MAX_SELECTION:
        return None
    return SEP.join(str(t).replace("%", "%25").replace(SEP, "%7E") for t in ids)


def split_ids(value: str | None) -> tuple[str, ...]:
    """The track ids of `join_ids`, without repeats; () for none or more than MAX_SELECTION."""
    if value is None:
        return ()
    ids = [p.replace("%7E", SEP).replace("%25", "%") for p in value.split(SEP) if p]
    ids = list(dict.fromkeys(ids))
    return tuple(ids) if len(ids) <= MAX_SELECTION else ()
