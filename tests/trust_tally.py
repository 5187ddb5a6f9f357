"""The trust suite's table (issue 23): every case marked `@pytest.mark.trust(family, harm)` is
counted, and the closing summary of a test run prints

    trust cases tried N / clean N / crashes N / wrong results N / data lost N / security failures N

A case is clean when it passes; a failing case counts under the harm it guards against
(`crash`: a traceback reaches the user; `wrong`: a wrong or silent result; `lost`: output or
stored data lost; `security`: untrusted text or a visitor reaches what it must not). Loaded by
pytest.ini (`-p tests.trust_tally`)."""

from __future__ import annotations

from collections import Counter

import pytest

HARMS = {"crash": "crashes", "wrong": "wrong results", "lost": "data lost", "security": "security failures"}
_tally: Counter = Counter()
_families: Counter = Counter()


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "trust(family, harm): a case of the trust suite; harm is one of " + ", ".join(HARMS))


def _harm(item) -> tuple[str, str] | None:
    marker = item.get_closest_marker("trust")
    if marker is None:
        return None
    family, harm = marker.args
    if harm not in HARMS:
        raise pytest.UsageError(f"{item.nodeid}: trust harm {harm!r} is not one of {', '.join(HARMS)}")
    return family, harm


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    marked = _harm(item)
    if marked is None or report.skipped:
        return
    # one count per case: its call phase, or the setup phase when setup failed
    if report.when == "call" or (report.when == "setup" and report.failed):
        family, harm = marked
        _tally["tried"] += 1
        _families[family] += 1
        _tally["clean" if report.passed else harm] += 1


def pytest_terminal_summary(terminalreporter):
    if not _tally["tried"]:
        return
    cells = [f"tried {_tally['tried']}", f"clean {_tally['clean']}"]
    cells += [f"{words} {_tally[harm]}" for harm, words in HARMS.items()]
    terminalreporter.write_line("trust cases " + " / ".join(cells))
    terminalreporter.write_line("trust families: " + ", ".join(f"{f} {n}" for f, n in sorted(_families.items())))
