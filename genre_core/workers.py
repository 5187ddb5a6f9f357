"""Worker processes that never outlive the process that started them."""

from __future__ import annotations

import multiprocessing
import os
import threading
from multiprocessing.connection import wait


def exit_with_parent() -> None:
    """Pool initializer: end this worker as soon as its parent process ends, however it ends.

    A pool's workers otherwise wait for work forever when the driver is killed with SIGKILL
    (the case that batched, resumable ingest is built for), holding memory and open files.
    """
    parent = multiprocessing.parent_process()
    if parent is None or parent.sentinel is None:
        return

    def watch() -> None:
        wait([parent.sentinel])
        os._exit(1)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()
