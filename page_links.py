"""Deep links in the app: the streamlit side of genre_core.app.links (a module beside app.py,
like page_frame).

Each run, app.py calls `adopt()`: parameters the session did not write itself (a link just
opened, an address typed, browser history) are kept under state.LINK for that run; app.py
takes the run from them and each page `take`s its own part once, checks it against the
database and says in one line what it could not find. Pages `keep` their view in the URL
when it is settled, before any st.stop, so the address bar always holds the view shown.
"""

from __future__ import annotations

import streamlit as st

from genre_core.app import links, state
from genre_core.untrusted import markdown as md

# The copy-link button: plain JavaScript, nothing loaded; it copies the address of the page
# around it (same origin), player time included. Where the clipboard is refused (a browser
# setting, an insecure origin) it shows the address selected, to copy by hand.
COPY_LINK = """<!doctype html><html><head><style>
body { margin: 0; font: 14px "Source Sans Pro", "Source Sans 3", Helvetica, Arial, sans-serif; color: #31333F; }
button { font: inherit; padding: 4px 12px; border: 1px solid rgba(49, 51, 63, .25); border-radius: 8px;
  background: #fff; cursor: pointer; }
button:hover { border-color: #FF4B4B; color: #FF4B4B; }
#said { margin-left: 8px; color: #555; }
input { display: none; width: 100%; box-sizing: border-box; margin-top: 6px; font: inherit; }
</style></head><body>
<button id="copy" type="button" title="Copy the address of this view">Copy link</button><span id="said"></span>
<input id="url" readonly aria-label="Link to this view">
<script>
(function () {
  const said = document.getElementById("said"), box = document.getElementById("url");
  function manual(url) {
    box.value = url; box.style.display = "block"; box.select();
    said.textContent = "copy it from here:";
  }
  document.getElementById("copy").addEventListener("click", async () => {
    const url = window.parent.location.href;
    try {
      await window.parent.navigator.clipboard.writeText(url);
      said.textContent = "copied";
      window.glCopied = url;
      setTimeout(() => { said.textContent = ""; }, 2500);
    } catch (e) { manual(url); }
  });
})();
</script></body></html>"""


def adopt() -> None:
    """app.py, before the sidebar: keep a link's parameters for this run when they came from
    outside the session, else forget the last link."""
    params = st.query_params.to_dict()
    if links.came_from_outside(params, st.session_state.get(state.LINK_WRITTEN)):
        st.session_state[state.LINK] = links.read(params)
    else:
        st.session_state.pop(state.LINK, None)


def take(page: str) -> dict[str, str]:
    """The parameters of a link opened in this run that belong to `page` ({} otherwise), once:
    a rerun of the page alone (a fragment, a test) does not apply them again."""
    link = st.session_state.get(state.LINK) or {}
    mine = links.for_page(link, page)
    st.session_state[state.LINK] = {k: v for k, v in link.items() if k not in mine}
    return mine


def linked_run(run_ids) -> str | None:
    """app.py: the run a link opened in this run names, when it is one of `run_ids`; a
    notice when it is not (the sidebar then keeps its choice)."""
    run, message = links.choose((st.session_state.get(state.LINK) or {}).get("run"), run_ids, "the run",
                                "the best run")
    if message:
        notify(message)
    return run


def notify(message: str) -> None:
    """One line about a link that asked for something not here (plain text, escaped here)."""
    st.warning(md(message), icon=":material/link_off:")


def keep(page: dict | None = None, defaults: dict | None = None) -> None:
    """Put the view in the URL: the run, and `page`'s parameters (values equal to `defaults`
    left out). Written only when it differs from the URL (the player's `t` aside)."""
    desired = links.view(st.session_state.get(state.RUN), page, db=st.session_state.get(state.LINK_DB),
                         defaults=defaults)
    st.session_state[state.LINK_WRITTEN] = desired
    if links.differs(st.query_params.to_dict(), desired):
        st.query_params.from_dict(desired)


def copy_link_button() -> None:
    """The "Copy link" button, in the sidebar of every page."""
    with st.sidebar:
        st.iframe(COPY_LINK, height="content", alt="Copy a link to this view")
