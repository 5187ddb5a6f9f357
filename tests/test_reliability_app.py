"""The app under a hostile visitor: which databases it opens, which files it serves, which
uploads it decodes (issue 12: D2 upload side, D4, D8 app side).

Every case is a security case; each is counted (tried / refused) and the counts are printed
at the end of the module's run.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import duckdb
import pytest
import soundfile as sf
from streamlit.testing.v1 import AppTest

from genre_core.app import access, media, state
from genre_core.app import queries as q
from genre_core.store import open_store
from tests.helpers import band_clip, tone, write

APP = Path(__file__).resolve().parent.parent / "app.py"
TALLY = {"tried": 0, "refused": 0}


class _Summary:
    """A plugin that adds the counts to pytest's closing summary."""

    def pytest_terminal_summary(self, terminalreporter):
        terminalreporter.write_line(f"security cases tried {TALLY['tried']} / refused {TALLY['refused']}")


@pytest.fixture(scope="module", autouse=True)
def _report(request):
    if not request.config.pluginmanager.has_plugin("genrelens_security_tally"):
        request.config.pluginmanager.register(_Summary(), "genrelens_security_tally")


def _count(refused: bool) -> bool:
    TALLY["tried"] += 1
    TALLY["refused"] += bool(refused)
    return refused


def _app(monkeypatch, allowed=(), query=None, secrets=None, **session) -> AppTest:
    """The app with `allowed` as $GENRELENS_DBS (no GENRELENS_DB), `query` as query params."""
    monkeypatch.delenv("GENRELENS_DB", raising=False)
    monkeypatch.setenv("GENRELENS_DBS", os.pathsep.join(str(p) for p in allowed))
    at = AppTest.from_file(str(APP), default_timeout=90)
    at.query_params.update(query or {})
    at.secrets.update(secrets or {})
    for key, value in session.items():
        at.session_state[key] = value
    return at.run()


def _refused(at: AppTest) -> bool:
    """The neutral refusal, nothing else: no traceback, no other message, no data."""
    assert not at.exception, [e.value for e in at.exception]
    return [e.value for e in at.error] == [access.REFUSED] and not at.dataframe and not at.info


@pytest.fixture
def empty_db(tmp_path) -> Path:
    return open_store(tmp_path / "allowed" / "empty.duckdb").path


# -- which databases the app opens (D4, D8) ---------------------------------------------------


def test_the_sidebar_offers_configured_databases_by_name_never_a_path_field(monkeypatch, tmp_path, empty_db):
    other = open_store(tmp_path / "other" / "second.duckdb").path
    secret = open_store(tmp_path / "third" / "from_secrets.duckdb").path
    at = _app(monkeypatch, [empty_db, other], secrets={"databases": [str(secret)]})
    assert not at.exception and not at.sidebar.text_input
    picker = at.sidebar.selectbox(key="_db")
    assert picker.options == ["empty.duckdb", "second.duckdb", "from_secrets.duckdb"]
    assert any("holds no dataset yet" in i.value for i in at.info)  # the first one is open
    picker.set_value("from_secrets.duckdb").run()
    assert at.session_state[state.DB_CHOICE] == "from_secrets.duckdb"
    assert not at.exception and any("holds no dataset yet" in i.value for i in at.info)


def test_a_deep_link_opens_a_configured_database_by_its_label(monkeypatch, tmp_path, empty_db):
    other = open_store(tmp_path / "b" / "other.duckdb").path
    at = _app(monkeypatch, [empty_db, other], query={"db": "other.duckdb"})
    assert not at.exception and at.sidebar.selectbox(key="_db").value == "other.duckdb"
    assert any("holds no dataset yet" in i.value for i in at.info)


def test_nothing_configured_means_the_demo_database(monkeypatch):
    monkeypatch.delenv("GENRELENS_DB", raising=False)
    monkeypatch.delenv("GENRELENS_DBS", raising=False)
    assert access.configured_databases() == [Path(os.path.abspath("data/genrelens.duckdb"))]
    monkeypatch.setenv("GENRELENS_DB", "x/one.duckdb")
    monkeypatch.setenv("GENRELENS_DBS", os.pathsep.join(["y/two.duckdb", "", "x/one.duckdb"]))
    labels = access.database_labels(access.configured_databases(["z/one.duckdb"]))
    assert list(labels) == ["x/one.duckdb", "two.duckdb", "z/one.duckdb"]  # same names told apart


def test_two_files_of_one_name_are_told_apart(tmp_path):
    paths = [tmp_path / "a" / "genrelens.duckdb", tmp_path / "b" / "genrelens.duckdb"]
    assert list(access.database_labels(paths)) == ["a/genrelens.duckdb", "b/genrelens.duckdb"]


@pytest.mark.parametrize("asked", [
    "/etc/passwd", "../../../../etc/passwd", "..%2F..%2Fetc%2Fpasswd", "data/../../etc/shadow",
    "OUTSIDE", "OUTSIDE_NAME", "ALLOWED_PATH", "", "empty.duckdb\x00.txt", "EMPTY.DUCKDB",
])
def test_a_query_param_outside_the_allow_list_is_refused(monkeypatch, tmp_path, empty_db, app_db, asked):
    """A real GenreLens database that is not configured, by path or by name, is refused like
    /etc/passwd; so is the path of a configured one (only labels choose)."""
    asked = {"OUTSIDE": app_db["db"], "OUTSIDE_NAME": Path(app_db["db"]).name,
             "ALLOWED_PATH": str(empty_db)}.get(asked, asked)
    at = _app(monkeypatch, [empty_db], query={"db": asked})
    assert _count(_refused(at))


def test_a_session_key_naming_a_path_is_refused(monkeypatch, empty_db, app_db):
    at = _app(monkeypatch, [empty_db], **{state.DB_CHOICE: app_db["db"]})
    assert _count(_refused(at))
    assert state.DB not in at.session_state  # no page can reach it either
    at.sidebar.selectbox(key="_db").set_value("empty.duckdb").run()  # the sidebar still works
    assert not at.error and any("holds no dataset yet" in i.value for i in at.info)


def _non_integer_schema(path: Path) -> None:
    open_store(path)
    with duckdb.connect(str(path)) as con:
        con.execute("UPDATE meta SET value = 'one' WHERE key = 'schema_version'")


def _corrupt(path: Path, start: int, end: int | None = None, keep: int | None = None) -> None:
    """A real database with random bytes over [start, end), or cut after `keep` bytes."""
    open_store(path)
    data = bytearray(path.read_bytes())
    end = len(data) if end is None else end
    data[start:end] = os.urandom(end - start)
    path.write_bytes(bytes(data[:keep]))


def _foreign(path: Path) -> None:
    with duckdb.connect(str(path)) as con:
        con.execute("CREATE TABLE meta (key VARCHAR, value VARCHAR)")


BAD_DATABASES = {
    "missing": lambda p: None,
    "text file": lambda p: p.write_text("not a database"),
    "empty file": lambda p: p.write_bytes(b""),
    "non-integer schema version": _non_integer_schema,
    "future schema version": lambda p: (open_store(p), duckdb.connect(str(p)).execute(
        "UPDATE meta SET value = '99' WHERE key = 'schema_version'").close()),
    "foreign DuckDB": _foreign,
    "corrupt headers": lambda p: _corrupt(p, 4096, 12288),  # DuckDB's two database headers
    "corrupt blocks": lambda p: _corrupt(p, 12288),
    "truncated": lambda p: _corrupt(p, 0, 0, keep=20_000),
    "a directory": lambda p: p.mkdir(),
}


@pytest.mark.parametrize("kind", BAD_DATABASES)
def test_a_configured_but_unusable_database_gets_the_same_neutral_message(monkeypatch, tmp_path, kind):
    path = tmp_path / "bad.duckdb"
    BAD_DATABASES[kind](path)
    at = _app(monkeypatch, [path])
    assert _count(_refused(at))
    assert str(tmp_path) not in access.REFUSED


def test_open_database_catches_what_the_store_raises(monkeypatch, tmp_path):
    """The app's one open point turns a ValueError from deeper down into the refusal."""
    def broken(db):
        raise ValueError("invalid literal for int() with base 10: 'one'")

    monkeypatch.setattr(q, "database_state", broken)
    at = _app(monkeypatch, [open_store(tmp_path / "fine.duckdb").path])
    assert _count(_refused(at))


# -- which files the app serves (D4) ----------------------------------------------------------


@pytest.fixture
def corpus_db(tmp_path):
    """A dataset rooted at corpus/ whose rows point at files inside and outside it."""
    root, outside = tmp_path / "corpus", tmp_path / "outside"
    good = write(root / "rock" / "good.wav", tone(2.0))
    write(outside / "elsewhere.wav", tone(2.0))
    (root / "rock" / "secret.wav").write_text("api_key = hunter2\n")
    (root / "rock" / "linked.wav").symlink_to(outside / "elsewhere.wav")
    (root / "rock" / "inner_link.wav").symlink_to(good)
    (root / "rock" / "passwd.wav").symlink_to("/etc/passwd")
    (root / "rock" / "notes.txt").write_text("plain text")
    os.mkfifo(root / "rock" / "pipe.wav")
    write(root / "rock" / "one_hz.wav", tone(2.0), sr=4000)
    _set_rate(root / "rock" / "one_hz.wav", 1)
    paths = {
        "good": good, "inner_link": root / "rock" / "inner_link.wav",
        "etc_passwd": Path("/etc/passwd"), "secret_text": root / "rock" / "secret.wav",
        "symlink_escape": root / "rock" / "linked.wav", "symlink_to_passwd": root / "rock" / "passwd.wav",
        "outside_root": outside / "elsewhere.wav", "dotdot": root / ".." / "outside" / "elsewhere.wav",
        "not_audio_extension": root / "rock" / "notes.txt", "fifo": root / "rock" / "pipe.wav",
        "one_hz_header": root / "rock" / "one_hz.wav", "relative": Path("rock/good.wav"),
        "directory": root / "rock", "missing": root / "rock" / "gone.wav",
    }
    rows = [dict(track_id=k, path=str(p), label="rock", artist=None, title=None, duration_s=2.0, sample_rate=22050,
                 channels=1, status="ok", error=None, error_kind=None, sha1=k, official_split=None)
            for k, p in paths.items()]
    store = open_store(tmp_path / "db" / "corpus.duckdb")
    dataset_id, _ = store.save_dataset("corpus", "folder", str(root), genres=["rock"], tracks=rows)
    store.save_dataset("everything", "folder", "/", genres=["rock"], tracks=rows)  # a root that confines nothing
    return store.path, dataset_id, root


def _set_rate(path: Path, rate: int) -> None:
    """Forge a WAV header's sample rate (and byte rate) in place."""
    data = bytearray(path.read_bytes())
    data[24:28] = rate.to_bytes(4, "little")
    data[28:32] = (rate * 2).to_bytes(4, "little")
    path.write_bytes(bytes(data))


def test_audio_is_served_only_from_inside_the_dataset_root(corpus_db):
    db, dataset_id, root = corpus_db
    assert q.track_file(db, dataset_id, "good") == (root / "rock" / "good.wav").resolve()
    assert q.track_file(db, dataset_id, "inner_link") == (root / "rock" / "good.wav").resolve()
    assert media.track_audio(db, dataset_id, "good")[0] == (root / "rock" / "good.wav").resolve()


@pytest.mark.parametrize("track_id", [
    "etc_passwd", "secret_text", "symlink_escape", "symlink_to_passwd", "outside_root", "dotdot",
    "not_audio_extension", "fifo", "one_hz_header", "relative", "directory", "missing", "../../etc/passwd",
])
def test_a_track_pointing_outside_or_at_non_audio_serves_nothing(corpus_db, track_id):
    db, dataset_id, _ = corpus_db
    served = (q.track_file(db, dataset_id, track_id), media.track_audio(db, dataset_id, track_id),
              media.track_mel(db, dataset_id, track_id))
    assert _count(served == (None, None, None))
    assert media.track_waveform(db, dataset_id, track_id).empty


def test_a_dataset_rooted_at_slash_serves_nothing(corpus_db):
    db, _, _ = corpus_db
    everything = int(open_store(db).dataset("everything")["dataset_id"])
    assert _count(q.track_file(db, everything, "good") is None)


@pytest.mark.parametrize("planted", ["none", "secret_text_inside_root", "symlink_out_of_root", "etc_passwd"])
def test_the_track_page_plays_nothing_the_database_points_outside(monkeypatch, tmp_path, app_db, planted,
                                                                  writable_app_db):
    """The probe's case end to end: a database row naming a text file as a track's audio made
    the Track page serve its bytes. ("none": the untouched track still plays.)"""
    path = writable_app_db
    run, dataset_id = app_db["ten_runs"][0], app_db["ten_id"]
    track_id = q.predictions(app_db["db"], run).track_id.iloc[0]
    root = tmp_path / "corpus"
    (root / "rock").mkdir(parents=True)
    (root / "rock" / "secret.wav").write_text("password=hunter2\n")
    (root / "rock" / "out.wav").symlink_to(write(tmp_path / "elsewhere.wav", tone(2.0)))
    target = {"secret_text_inside_root": root / "rock" / "secret.wav",
              "symlink_out_of_root": root / "rock" / "out.wav", "etc_passwd": Path("/etc/passwd")}.get(planted)
    if target is not None:
        with duckdb.connect(str(path)) as con:
            con.execute("UPDATE datasets SET root = ? WHERE dataset_id = ?", [str(root), dataset_id])
            con.execute("UPDATE tracks SET path = ? WHERE dataset_id = ? AND track_id = ?",
                        [str(target), dataset_id, track_id])
    at = _app(monkeypatch, [path], **{state.RUN: run, state.TRACK: (dataset_id, track_id)})
    at.switch_page("pages/track.py").run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.title[0].value == f"Track {track_id}"
    if target is None:
        assert at.get("audio") and not at.warning
    else:
        assert _count(not at.get("audio") and [w.value for w in at.warning] == [media.NO_AUDIO])


# -- uploads on the Classify page (D2) --------------------------------------------------------


def _wav(seconds: float = 3.0, sr: int = 22050) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, band_clip("mid", 3, seconds, sr), sr, format="WAV")
    return buffer.getvalue()


def _lying_wav() -> bytes:
    """132 KB of WAV whose header says 1 Hz: 66,150 s of audio (the probe's case)."""
    data = bytearray(_wav(3.0))
    data[24:28] = (1).to_bytes(4, "little")
    data[28:32] = (2).to_bytes(4, "little")
    return bytes(data)


def _lying_flac() -> bytes:
    """A 2-s FLAC whose STREAMINFO promises 8 channels for 3.9 h: ~10 GB once decoded, yet
    inside check_header's bounds (rate, channels and duration are each sane)."""
    buffer = io.BytesIO()
    sf.write(buffer, band_clip("mid", 4, 2.0), 22050, format="FLAC")
    data = bytearray(buffer.getvalue())
    total = int(3.9 * 3600 * 22050)
    data[18:26] = ((22050 << 44) | (7 << 41) | (15 << 36) | total).to_bytes(8, "big")  # rate, ch-1, bps-1, frames
    return bytes(data)


BAD_UPLOADS = {
    "one_hz.wav": _lying_wav,
    "eight_channels_four_hours.flac": _lying_flac,
    "secret.wav": lambda: b"username=admin\npassword=hunter2\n" * 100,
    "empty.wav": lambda: b"",
    "big.wav": lambda: _wav(30.0),  # 1.3 MB against a 1 MB cap (set below)
    "header_only.wav": lambda: _wav(3.0)[:44],
    "riff_garbage.wav": lambda: b"RIFF" + os.urandom(4000),
    "random.mp3": lambda: os.urandom(5000),
}


@pytest.mark.parametrize("name", BAD_UPLOADS)
def test_a_bad_upload_gets_one_line_and_no_decoding(monkeypatch, app_db, name):
    def never(*args, **kwargs):
        raise AssertionError("decoded or loaded a model for an upload that fails its header check")

    monkeypatch.setattr(media, "MAX_UPLOAD_MB", 1)
    from genre_core.live import recording

    monkeypatch.setattr(recording, "classify_recording", never)
    monkeypatch.setattr(recording, "load_model", never)
    monkeypatch.setenv("GENRELENS_DB", app_db["db"])
    at = AppTest.from_file(str(APP), default_timeout=90)
    at.session_state[state.RUN] = app_db["toy_run"]
    at.run().switch_page("pages/classify.py").run()
    at.file_uploader[0].upload(name, BAD_UPLOADS[name](), "audio/wav").run()
    assert not at.exception, [e.value for e in at.exception]
    messages = [e.value for e in at.error]
    assert _count(len(messages) == 1 and "\n" not in messages[0] and name in messages[0]), messages


def test_upload_checks_pass_a_real_recording():
    assert media.upload_problem(_wav(3.0), "fine.wav") is None
    assert "limit is 0.001 MB" in media.upload_problem(_wav(3.0), "fine.wav", max_mb=0.001)
    assert "sample rate 1 Hz" in media.upload_problem(_lying_wav(), "x.wav")
    assert "too long" in media.upload_problem(_lying_flac(), "x.flac")
    assert 130_000 < len(_lying_wav()) < 135_000  # the probe's "132 KB"
