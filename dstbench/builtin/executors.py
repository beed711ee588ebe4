"""The built-in executors, as a plugin."""

from __future__ import annotations

from dstbench.contracts.components import Register
from dstbench.hookspecs import hookimpl
from dstbench.suite.dask_executor import DaskExecutor
from dstbench.suite.local import LocalExecutor
from dstbench.suite.slurm import SlurmExecutor


@hookimpl
def dstbench_register_executors(register: Register) -> None:
    """Register the built-in executors (submitit and dask are imported only when used)."""
    register(
        "local",
        LocalExecutor,
        description="parallel worker processes on this machine (-j N; GPUs round-robin)",
    )
    register(
        "slurm",
        SlurmExecutor,
        description="SLURM job arrays through submitit (pip install 'dstbench[slurm]')",
    )
    register(
        "dask",
        DaskExecutor,
        description="a dask.distributed cluster, or a local one (pip install 'dstbench[dask]')",
    )
