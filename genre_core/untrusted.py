"""One rule for untrusted text, applied at the edges.

Everything that came from a dataset (folder and file names, artists, titles, genre labels), a
run label or a visitor is untrusted. It is stored as given; where it leaves the program it goes
through exactly one of these, chosen by where it is going:

- `markdown(text)`: Streamlit markdown (titles, captions, st.write, st.info...): no link,
  image, emphasis, HTML or colour directive in the text takes effect (an artist called
  `![x](http://host/p.png)` shows those characters, and no browser fetches the URL);
- `chart(text)`: plotly labels, titles and hover text, which render a subset of HTML;
- `html(text)`: our own HTML (the report);
- `cell(text)`: a CSV/TSV cell another program opens (a spreadsheet runs `=HYPERLINK(...)`);
- `terminal(text)`: a line the CLI prints (an escape sequence can retitle or clear a terminal);
- `shortened(text)`: text echoed in an error message, cut to a length a person reads.

All of them first take out what only deceives: control characters (escape sequences, NUL,
carriage returns), bidi overrides and isolates (which show "evil\u202egpj.exe" as
"evilexe.jpg") and zero-width characters. Labels that go into file names and run ids are
checked by a full-match rule (`is_label`), never by `re.match` with `$` (which accepts a
trailing newline).
"""

from __future__ import annotations

import html as _html
import re

# C0 and C1 controls (tab and newline handled by the callers that keep them), bidi embeddings,
# overrides and isolates, zero-width and direction marks, the BOM.
_DECEIVING = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff]")
_LINE_BREAKS = re.compile("[\t\n]+")
# What makes markup inside a line: links and images ([]()!), emphasis (*_~), code (`), HTML and
# entities (<>&: an entity could bring a bidi override back), tables (|), Streamlit's ":icon:" and
# ":red[...]" directives and "$math$". Escaped with a backslash, each shows as itself.
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]()<>!|~:$&])")
# What makes a block at the start of a line: a heading, quote, list item or numbered item.
_MARKDOWN_BLOCK = re.compile(r"^(\s*[#>+-]|\s*\d+[.)])")
# Characters a spreadsheet reads as the start of a formula (OWASP's list: = + - @, tab, CR).
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_LABEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]{0,63}")
SHORT = 120  # characters of an untrusted value echoed in an error


def plain(text, keep_lines: bool = False) -> str:
    """`text` as a string without control, bidi-override or zero-width characters; tabs and
    newlines become single spaces unless `keep_lines`."""
    text = _DECEIVING.sub("", "" if text is None else str(text))
    return text if keep_lines else _LINE_BREAKS.sub(" ", text)


def markdown(text) -> str:
    """For Streamlit markdown: every character shows as itself, none is markup."""
    escaped = _MARKDOWN_SPECIAL.sub(r"\\\1", plain(text))
    return _MARKDOWN_BLOCK.sub(lambda m: m.group(1)[:-1] + "\\" + m.group(1)[-1], escaped)


def chart(text) -> str:
    """For plotly labels, titles and hover text (plotly renders <a>, <b>, <br>... in them)."""
    return _html.escape(plain(text), quote=False)


def html(text) -> str:
    """For HTML we write ourselves (element text and attribute values)."""
    return _html.escape(plain(text), quote=True)


def cell(value):
    """For a CSV/TSV cell another program opens: a string that a spreadsheet would read as a
    formula is prefixed with an apostrophe (shown, not run); numbers and None pass as they are."""
    if not isinstance(value, str):
        return value
    text = plain(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


def cells(frame):
    """A copy of DataFrame `frame` whose text cells and column names went through `cell`
    (for to_csv: a genre name is a column header of a timeline)."""
    from pandas.api.types import is_object_dtype, is_string_dtype

    text = [c for c in frame.columns if is_object_dtype(frame[c]) or is_string_dtype(frame[c])]
    safe = frame.assign(**{c: frame[c].map(cell) for c in text}) if text else frame.copy()
    return safe.rename(columns=cell)


def terminal(text) -> str:
    """For a line printed to a terminal: no escape sequence, no bidi override, one line."""
    return plain(text)


def shortened(text, limit: int = SHORT) -> str:
    """For an error message: plain, and at most `limit` characters (the rest counted)."""
    text = plain(text)
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… ({len(text) - limit:,} more characters)"


def is_label(text) -> bool:
    """A model or run label safe in run ids and file names: 1-64 of letters, digits and _.+-,
    starting with a letter or digit; the whole string must match (no trailing newline)."""
    return isinstance(text, str) and _LABEL.fullmatch(text) is not None
