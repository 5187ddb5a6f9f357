"""`genrelens app`: the Streamlit app, from an installed package or from this checkout.

The app's files (app.py, server.py, page_frame.py, pages/, .streamlit/config.toml) sit at the checkout's
top level, where `make app` runs them; the wheel ships the same files as the package
`genrelens_app` (see pyproject.toml), so an installed GenreLens serves the same pages.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

CHECKOUT_APP = Path(__file__).resolve().parent.parent / "server.py"


def app_script() -> Path:
    """server.py (app.py behind its security headers) of the installed `genrelens_app`
    package, else of the checkout this file is in."""
    spec = importlib.util.find_spec("genrelens_app")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        if (Path(folder) / "server.py").is_file():
            return Path(folder) / "server.py"
    if CHECKOUT_APP.is_file():
        return CHECKOUT_APP
    raise FileNotFoundError("the app's files are not installed (genrelens_app) and this is not a checkout")


def serve(db: Path, port: int | None = None, address: str | None = None) -> None:
    """Replace this process with `streamlit run server.py` on database `db` (the app's default
    choice, $GENRELENS_DB); Ctrl-C stops the server as it would `make app`."""
    script = app_script()
    if not db.is_file():
        raise FileNotFoundError(f"{db}: no such database (make one with `genrelens demo` or `genrelens ingest`)")
    os.environ["GENRELENS_DB"] = str(db.expanduser().resolve())
    command = [sys.executable, "-m", "streamlit", "run", str(script)]
    if port is not None:
        command += ["--server.port", str(port)]
    if address is not None:
        command += ["--server.address", address]
    sys.stdout.flush()
    os.execv(sys.executable, command)
