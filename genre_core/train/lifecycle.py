"""A run's life as the database sees it: a heartbeat while it trains, signals as interrupts,
and how it ends (`recorded`: interrupted or failed, and resumable).

A process killed with SIGKILL (or a lost machine) cannot write its own end; the heartbeat lets
every reader tell such a run from a live one (Store.runs reports it 'interrupted'). SIGTERM is
turned into KeyboardInterrupt, so `kill PID` ends a run like Ctrl-C does: marked 'interrupted',
resumable with --resume.
"""

from __future__ import annotations

import signal
import threading
import traceback
from contextlib import contextmanager
from typing import Iterator

from genre_core.store import HEARTBEAT_S, Store, StoreError


class Interrupted(Exception):
    """Raised after `stop_after_epoch`: the checkpoint is on disk, the run can be resumed."""


class NonFiniteLoss(ValueError):
    """The training loss became NaN or infinite: nothing trained from then on means anything,
    so the run fails instead of completing (a NaN loss once stored a 'complete' run at chance
    accuracy). Raised before that epoch's checkpoint, so the last one kept is the last sound one."""


class Heartbeat:
    """Context manager: a daemon thread that calls `store.beat(run_id)` every `period_s`, and
    at once after `nudge()` (the loop nudges after each epoch).

    Beats come from this one thread only, so they never race each other for the same row. A
    beat that cannot get the database lock is skipped: the next one will do.
    """

    def __init__(self, store: Store, run_id: str, period_s: float = HEARTBEAT_S):
        self.store, self.run_id, self.period_s = store, run_id, period_s
        self._wake, self._stop = threading.Event(), threading.Event()
        self._beating = threading.Lock()
        self._thread = threading.Thread(target=self._run, name=f"heartbeat {run_id}", daemon=True)

    def nudge(self) -> None:
        self._wake.set()

    def _run(self) -> None:
        while True:
            self._wake.wait(self.period_s)
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                with self._beating:
                    self.store.beat(self.run_id)
            except StoreError:
                pass  # locked by another writer too long: STALE_AFTER_S outlasts several missed beats

    @contextmanager
    def held(self) -> Iterator[None]:
        """No beat inside this block. For the run's final transaction: with DuckDB 2.0, a
        beat's connection opening or closing in this process while that transaction registers
        its frames failed it now and then ("pandas_scan does not exist"), seen when a probe's
        last epoch (and its nudged beat) ends a moment before the results are written."""
        with self._beating:
            yield

    def __enter__(self) -> "Heartbeat":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join()


@contextmanager
def recorded(store: Store, run_id: str) -> Iterator[Heartbeat]:
    """The life of a started run: a heartbeat while the block runs; a stop (Ctrl-C, SIGTERM,
    a test's stop_after_epoch) marks it 'interrupted' and an exception 'failed', both
    resumable with --resume, and both re-raised."""
    try:
        with Heartbeat(store, run_id) as heartbeat:
            yield heartbeat
    except (Interrupted, KeyboardInterrupt) as exc:
        store.interrupt_run(run_id, f"interrupted ({exc or 'Ctrl-C'}); continue with --resume {run_id}")
        raise
    except Exception as exc:
        store.fail_run(run_id, failure(exc))
        raise


def failure(exc: Exception) -> str:
    """What a failed run's row says: an expected end (the loss became NaN) its one line; any
    other exception also where it was raised."""
    if isinstance(exc, NonFiniteLoss):
        return str(exc)
    return f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=5)}"


def _terminate_as_interrupt(signum, frame) -> None:
    raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")


def interrupt_on_sigterm() -> None:
    """From now on SIGTERM raises KeyboardInterrupt in the main thread (call from a CLI's main;
    elsewhere, e.g. a CLI called from a worker thread, signals are not ours to take)."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _terminate_as_interrupt)
