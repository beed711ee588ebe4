"""Helpers for the tests that use real cluster engines (SLURM, Dask).

Locally such a test skips when its engine is missing; in CI (``CI=true``) it fails instead, so
that the engines are really exercised on every submission. ``.ci/slurm-up.sh`` starts the
one-node SLURM cluster the SLURM tests submit to.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest


def in_ci() -> bool:
    """Whether this is a CI run (where a missing engine is a failure)."""
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def missing(why: str) -> None:
    """Skip the test locally, fail it in CI."""
    if in_ci():
        pytest.fail(f"{why} (CI must exercise the real engine)")
    pytest.skip(why)


def require_slurm() -> None:
    """A SLURM cluster that answers, with submitit installed."""
    try:
        import submitit  # noqa: F401
    except ImportError:
        missing("submitit is not installed: pip install 'dstbench[slurm]'")
    if shutil.which("sbatch") is None:
        missing("no sbatch on PATH: start a cluster with .ci/slurm-up.sh")
    try:
        out = subprocess.run(
            ["sinfo", "-h", "-o", "%t"], capture_output=True, text=True, timeout=20, check=True
        ).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        missing(f"the SLURM cluster does not answer ({exc}): start it with .ci/slurm-up.sh")
    if not any(s.strip() in ("idle", "mix", "alloc") for s in out.split()):
        missing(f"the SLURM cluster has no usable node (sinfo says {out.split()})")


def require_dask() -> None:
    """dask.distributed installed."""
    try:
        import distributed  # noqa: F401
    except ImportError:
        missing("dask.distributed is not installed: pip install 'dstbench[dask]'")
