"""A plugin whose first load in a suite's worker process is killed by SIGKILL (as by the OOM
killer while the worker starts); the marker file named by DIES_AT_START_MARKER says it was."""

from __future__ import annotations

import multiprocessing
import os
import signal
from pathlib import Path

_marker = os.environ.get("DIES_AT_START_MARKER")
if _marker and multiprocessing.parent_process() is not None and not Path(_marker).exists():
    Path(_marker).write_text("killed once")
    os.kill(os.getpid(), signal.SIGKILL)
