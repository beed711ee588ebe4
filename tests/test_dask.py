"""The ``dask`` executor against a real dask.distributed cluster: a scheduler and two workers
started as processes on 127.0.0.1, a real ``dstbench suite`` driving them.

Locally these tests skip without dask.distributed; in CI they fail instead. The cluster's
processes are killed at the end of every test, whether it passed or not.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from engines import require_dask

from dstbench.io import read_json

pytestmark = [pytest.mark.dask, pytest.mark.slow]

#: Six tiny runs.
SIX = """
name = "six"
model = "mlp[hidden=[32]]"
dataset = "digits"
epochs = 2
densities = [0.1, 0.3]
criteria = ["magnitude", "set"]
growth = ["random"]
seeds = [0]
baselines = ["static"]
"""

#: Four runs long enough to be caught running.
FOUR_LONG = """
name = "four"
model = "mlp"
dataset = "digits"
epochs = 60
densities = [0.1, 0.2]
criteria = ["magnitude"]
growth = ["random"]
seeds = [0, 1]
"""

#: Two one-epoch runs and two that would take long, interleaved in the matrix.
SHORT_AND_LONG = """
name = "mixed"
model = "mlp"
dataset = "digits"
epochs = [1, 2000]
densities = [0.1]
criteria = ["magnitude"]
growth = ["random"]
seeds = [0, 1]
"""

#: What may differ between two executions of the same run.
EXECUTION_KEYS = ("timings", "provenance", "execution", "checkpoint", "digest")

#: The suite's last summary line: every count of it.
SUMMARY = re.compile(
    r"^suite (?P<name>\S+): (?P<runs>\d+) runs: (?P<counts>[^|]+) \| ran (?P<ran>\d+) in \S+ "
    r"(?:with (?P<workers>\d+) workers?|on (?P<executor>\S+))$",
    re.MULTILINE,
)

#: Asks the scheduler for its workers, from a process of its own (no client in pytest's).
WORKERS_SCRIPT = """
import json, sys
from distributed import Client
with Client(sys.argv[1], timeout=30) as client:
    client.wait_for_workers(int(sys.argv[2]), timeout=float(sys.argv[3]))
    workers = client.scheduler_info()["workers"]
    print(json.dumps({str(info["name"]): address for address, info in workers.items()}))
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def server_folders(pgid: int) -> list[tuple[int, Path]]:
    """The run servers in process group ``pgid``, busy or idle: (pid, its folder), read from
    /proc (``python -m dstbench.suite.dask_executor --serve FOLDER ...``)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            argv = (entry / "cmdline").read_bytes().decode().split("\0")
        except (OSError, UnicodeDecodeError, IndexError):
            continue  # gone meanwhile
        if int(fields[2]) != pgid or "dstbench.suite.dask_executor" not in argv:
            continue
        with contextlib.suppress(ValueError, IndexError):
            found.append((int(entry.name), Path(argv[argv.index("--serve") + 1])))
    return found


def servers(pgid: int) -> list[int]:
    """The run servers in process group ``pgid``, busy or idle."""
    return [pid for pid, _ in server_folders(pgid)]


def run_processes(pgid: int) -> list[tuple[int, str]]:
    """The run servers (pid, run id) in process group ``pgid`` that are training a run now
    (from the server's ``current`` file)."""
    found = []
    for pid, folder in server_folders(pgid):
        try:
            found += [(pid, r) for r in json.loads((folder / "current").read_text())]
        except (OSError, ValueError):
            continue  # idle, or starting or ending a job just now
    return found


class ServerWatch:
    """Polls the run servers of some workers' process groups in the background: which
    server processes each worker had."""

    def __init__(self, groups: list[int]) -> None:
        self.groups = groups
        self.by_worker: dict[int, set[int]] = {}
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self.poll, daemon=True)

    @property
    def seen(self) -> set[int]:
        return {pid for pids in self.by_worker.values() for pid in pids}

    def poll(self) -> None:
        while not self.stopping.is_set():
            for pgid in self.groups:
                for pid in servers(pgid):
                    self.by_worker.setdefault(pgid, set()).add(pid)
            time.sleep(0.05)

    def __enter__(self) -> ServerWatch:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        self.thread.join()


class DaskCluster:
    """A scheduler and named workers, each in a process group of its own."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.address = f"tcp://127.0.0.1:{free_port()}"
        self.processes: dict[str, subprocess.Popen] = {}

    def spawn(self, name: str, command: list[str]) -> subprocess.Popen:
        log = open(self.folder / f"{name}.log", "w")  # noqa: SIM115 (the process keeps it)
        process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()
        self.processes[name] = process
        return process

    def start(self, workers: int = 2) -> None:
        port = self.address.rsplit(":", 1)[1]
        command = [sys.executable, "-m", "distributed.cli.dask_scheduler"]
        self.spawn("scheduler", [*command, "--host", "127.0.0.1", "--port", port, "--no-dashboard"])
        for index in range(workers):
            self.start_worker(f"w{index}")
        self.workers = self.wait_for_workers(workers)

    def start_worker(self, name: str) -> None:
        command = [sys.executable, "-m", "distributed.cli.dask_worker", self.address]
        command += ["--nworkers", "1", "--nthreads", "1", "--no-dashboard"]
        self.spawn(name, [*command, "--host", "127.0.0.1", "--name", name])

    def wait_for_workers(self, count: int, seconds: float = 120) -> dict[str, str]:
        """Wait until the scheduler sees ``count`` workers; their names -> addresses."""
        done = subprocess.run(
            [sys.executable, "-c", WORKERS_SCRIPT, self.address, str(count), str(seconds)],
            capture_output=True,
            text=True,
            timeout=seconds + 60,
            check=False,
        )
        assert done.returncode == 0, f"the cluster did not come up: {done.stderr}\n{self.logs()}"
        return json.loads(done.stdout.strip().splitlines()[-1])

    def kill(self, name: str) -> None:
        """SIGKILL the process group of ``name`` (a worker: its nanny, itself and its runs)."""
        process = self.processes[name]
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)

    def close(self) -> None:
        for name in list(self.processes):
            self.kill(name)

    def logs(self) -> str:
        return "\n".join(
            f"--- {path.name}\n" + "\n".join(path.read_text().splitlines()[-20:])
            for path in sorted(self.folder.glob("*.log"))
        )


@pytest.fixture
def cluster(tmp_path) -> Iterator[DaskCluster]:
    """A fresh scheduler and two workers (``w0``, ``w1``); killed whatever the test does."""
    require_dask()
    if not Path("/proc/self/stat").is_file():
        pytest.skip("these tests find the runs' processes in /proc (Linux)")
    folder = tmp_path / "cluster"
    folder.mkdir()
    engine = DaskCluster(folder)
    try:
        engine.start()
        yield engine
    finally:
        engine.close()


def dstbench(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "dstbench", *args],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def start_suite(cluster: DaskCluster, suite: Path, out: Path, log) -> subprocess.Popen:
    """``dstbench suite`` on the cluster, in the background (killed with the cluster)."""
    command = [sys.executable, "-m", "dstbench", "suite", str(suite), "-o", str(out)]
    command += ["-j", "2", "--device", "cpu", "--progress", "plain"]
    command += ["--executor", f"dask[address={cluster.address}]"]
    driver = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    cluster.processes["driver"] = driver
    return driver


def comparable(record: dict) -> dict:
    """A record without what depends on where and when it ran."""
    record = {k: v for k, v in record.items() if k not in EXECUTION_KEYS}
    metrics = dict(record["metrics"])
    metrics["curve"] = [{k: v for k, v in e.items() if k != "seconds"} for e in metrics["curve"]]
    record["metrics"] = metrics
    return record


def records(root: Path) -> dict[str, dict]:
    return {p.stem: read_json(p) for p in sorted((root / "runs").glob("*.json"))}


def board(root: Path) -> list[str]:
    """The leaderboard without the lines that name the executor and the date."""
    text = (root / "leaderboard.md").read_text()
    return [line for line in text.splitlines() if not line.startswith(("| executor", "| date"))]


def summary(stdout: str) -> dict[str, str]:
    found = list(SUMMARY.finditer(stdout))
    assert found, f"no summary line in:\n{stdout}"
    return found[-1].groupdict()


def wait_for(condition, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out after {seconds}s waiting for {what}")


def test_a_suite_on_two_workers_gives_the_local_records_and_leaderboard(cluster, tmp_path):
    (tmp_path / "s.toml").write_text(SIX)
    suite = str(tmp_path / "s.toml")
    local = dstbench(
        "suite", suite, "-o", str(tmp_path / "local"), "-j", "2", "--device", "cpu",
        "--executor", "local[threads=1]", "--progress", "plain",
    )  # fmt: skip
    assert local.returncode == 0, local.stdout + local.stderr
    with ServerWatch([cluster.processes[name].pid for name in cluster.workers]) as watch:
        done = dstbench(
            "suite", suite, "-o", str(tmp_path / "dask"), "-j", "2", "--device", "cpu",
            "--executor", f"dask[address={cluster.address}]", "--progress", "plain",
        )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr + cluster.logs()
    # Each worker trained its runs in one process (torch imported once per worker, not once
    # per run), and the suite closed those processes when it ended.
    assert 1 <= len(watch.seen) <= 2 and all(len(pids) == 1 for pids in watch.by_worker.values()), (
        watch.by_worker
    )
    assert all(not servers(pgid) for pgid in watch.groups)

    expected = records(tmp_path / "local")
    got = records(tmp_path / "dask")
    assert len(expected) == 6
    assert {k: r["status"] for k, r in got.items()} == dict.fromkeys(expected, "ok")
    assert {k: comparable(r) for k, r in got.items()} == {
        k: comparable(r) for k, r in expected.items()
    }
    # Both workers ran runs, each recorded where it ran.
    workers = {r["execution"]["worker"] for r in got.values()}
    assert workers == {f"dask {address}" for address in cluster.workers.values()}
    assert {r["execution"]["executor"] for r in got.values()} == {"dask"}
    assert board(tmp_path / "dask") == board(tmp_path / "local")
    # The summary counts what happened: six runs, all done, all six run by this invocation.
    assert summary(done.stdout) == {
        "name": "six", "runs": "6", "counts": "6 done", "ran": "6", "workers": None,
        "executor": "dask",
    }  # fmt: skip
    assert summary(local.stdout) == {
        **summary(done.stdout), "workers": "2", "executor": None,
    }  # fmt: skip
    assert sorted(re.findall(r"^\[(\d)/6\] ok ", done.stdout, re.MULTILINE)) == list("123456")

    # Run again: nothing to run, nothing submitted.
    again = dstbench("suite", suite, "-o", str(tmp_path / "dask"), "--executor", "dask")
    assert again.returncode == 0, again.stdout + again.stderr
    assert "6 already finished, nothing to run" in again.stdout
    assert summary(again.stdout)["ran"] == "0"
    assert records(tmp_path / "dask") == got


def test_batched_groups_train_on_the_workers_as_they_do_locally(cluster, tmp_path):
    (tmp_path / "s.toml").write_text(SIX.replace('baselines = ["static"]', 'engine = "batched"'))
    suite = str(tmp_path / "s.toml")
    local = dstbench(
        "suite", suite, "-o", str(tmp_path / "local"), "-j", "2", "--device", "cpu",
        "--executor", "local[threads=1]",
    )  # fmt: skip
    assert local.returncode == 0, local.stdout + local.stderr
    done = dstbench(
        "suite", suite, "-o", str(tmp_path / "dask"), "-j", "2", "--device", "cpu",
        "--executor", f"dask[address={cluster.address}]", "--progress", "plain",
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr + cluster.logs()
    expected, got = records(tmp_path / "local"), records(tmp_path / "dask")
    assert len(got) == 4 and {r["status"] for r in got.values()} == {"ok"}
    assert {k: comparable(r) for k, r in got.items()} == {
        k: comparable(r) for k, r in expected.items()
    }
    # The same groups as locally, each trained together in one task.
    assert {r["execution"]["engine"] for r in got.values()} == {"batched"}
    sizes = {k: r["timings"]["group_size"] for k, r in got.items()}
    assert sizes == {k: r["timings"]["group_size"] for k, r in expected.items()}
    assert max(sizes.values()) > 1


def test_a_run_on_a_killed_worker_is_run_again_on_the_other(cluster, tmp_path):
    (tmp_path / "s.toml").write_text(FOUR_LONG)
    out = tmp_path / "out"
    log = open(tmp_path / "driver.log", "w")  # noqa: SIM115
    driver = start_suite(cluster, tmp_path / "s.toml", out, log)
    victim = cluster.processes["w0"]
    try:
        # A run executing on w0: its subprocess is in w0's process group.
        wait_for(lambda: run_processes(victim.pid), 120, "a run on w0")
        time.sleep(0.5)  # its start event reaches the scheduler
        running = run_processes(victim.pid)
        assert running, "the run on w0 ended too soon to be killed"
        [(_, killed_run)] = running
        assert not (out / "runs" / f"{killed_run}.json").exists()
        busy = run_processes(cluster.processes["w1"].pid)
        cluster.kill("w0")
        # The lost run leaves the progress at once, while the other worker is still busy
        # with its own run (not only when the scheduler starts it again there).
        lost = f"{cluster.workers['w0']} was lost; the scheduler runs it again on another worker"
        wait_for(lambda: lost in (tmp_path / "driver.log").read_text(), 20, "the lost run")
        if busy:
            [(_, other_run)] = busy
            assert run_processes(cluster.processes["w1"].pid) == busy
            assert not (out / "runs" / f"{other_run}.json").exists()
        assert driver.wait(timeout=300) == 0
    finally:
        log.close()
    stdout = (tmp_path / "driver.log").read_text()

    got = records(out)
    assert {r["status"] for r in got.values()} == {"ok"}, stdout
    assert len(got) == 4
    # The killed run ran again on the surviving worker, and the suite said so.
    survivor = f"dask {cluster.workers['w1']}"
    assert got[killed_run]["execution"]["worker"] == survivor
    assert f"{cluster.workers['w0']} was lost; the scheduler runs it again on" in stdout
    assert summary(stdout) == {
        "name": "four", "runs": "4", "counts": "4 done", "ran": "4", "workers": None,
        "executor": "dask",
    }  # fmt: skip
    # Nothing of the killed worker's runs lives on.
    assert not run_processes(victim.pid)


#: Short runs to finish on both workers, then long ones to be caught running.
SHORT_THEN_LONG = """
name = "finished"
model = "mlp"
dataset = "digits"
epochs = [1, 40]
densities = [0.1]
criteria = ["magnitude"]
growth = ["random"]
seeds = [0, 1, 2]
"""


def test_records_written_before_a_worker_dies_are_never_rewritten(cluster, tmp_path):
    """Dask recomputes the finished tasks of a worker it loses; their runs are done and
    their records stay as they were (nothing is trained again)."""
    (tmp_path / "s.toml").write_text(SHORT_THEN_LONG)
    out = tmp_path / "out"
    log = open(tmp_path / "driver.log", "w")  # noqa: SIM115
    driver = start_suite(cluster, tmp_path / "s.toml", out, log)
    victim = cluster.processes["w0"]
    try:
        wait_for(lambda: len(list((out / "runs").glob("*.json"))) >= 3, 240, "3 records")
        wait_for(lambda: run_processes(victim.pid), 240, "a run on w0")
        before = {p.name: p.read_bytes() for p in (out / "runs").glob("*.json")}
        cluster.kill("w0")
        assert driver.wait(timeout=400) == 0
    finally:
        log.close()
    stdout = (tmp_path / "driver.log").read_text()
    after = {p.name: p.read_bytes() for p in (out / "runs").glob("*.json")}
    rewritten = [name for name, data in before.items() if after[name] != data]
    assert rewritten == [], stdout
    assert len(after) == 6 and {json.loads(d)["status"] for d in after.values()} == {"ok"}


def test_a_scheduler_lost_mid_suite_is_one_line(cluster, tmp_path):
    # Runs of minutes: a run the worker left training would outlast the checks below.
    (tmp_path / "s.toml").write_text(FOUR_LONG.replace("epochs = 60", "epochs = 1000"))
    out = tmp_path / "out"
    log = open(tmp_path / "driver.log", "w")  # noqa: SIM115
    driver = start_suite(cluster, tmp_path / "s.toml", out, log)
    try:
        wait_for(lambda: run_processes(cluster.processes["w0"].pid), 120, "a run on w0")
        cluster.kill("scheduler")
        code = driver.wait(timeout=120)
    finally:
        log.close()
    stdout = (tmp_path / "driver.log").read_text()
    assert code == 2, stdout
    assert "Traceback" not in stdout
    errors = [line for line in stdout.splitlines() if line.startswith("dstbench: error: ")]
    assert len(errors) == 1 and "the scheduler at" in errors[0] and "was lost" in errors[0]
    # The workers stop their runs (which checkpoint) rather than train on, orphaned, and
    # write records nobody follows.
    groups = [cluster.processes[name].pid for name in cluster.workers]
    wait_for(lambda: not any(run_processes(g) for g in groups), 20, "the runs to stop")
    written = records(out)
    time.sleep(3.0)
    assert records(out) == written
    assert len(written) < 4


def test_ctrl_c_stops_the_runs_on_the_workers_and_keeps_the_records(cluster, tmp_path):
    (tmp_path / "s.toml").write_text(SHORT_AND_LONG)
    out = tmp_path / "out"
    log = open(tmp_path / "driver.log", "w")  # noqa: SIM115
    driver = start_suite(cluster, tmp_path / "s.toml", out, log)
    groups = [cluster.processes[name].pid for name in cluster.workers]

    def running() -> list[tuple[int, str]]:
        return [run for pgid in groups for run in run_processes(pgid)]

    try:
        # The two one-epoch runs are done while a long one is running.
        wait_for(lambda: len(records(out)) == 2 and running(), 180, "two records and a run")
        before = records(out)
        driver.send_signal(signal.SIGINT)
        assert driver.wait(timeout=120) == 130
    finally:
        log.close()
    stdout = (tmp_path / "driver.log").read_text()
    assert "interrupted: finished runs are saved" in stdout
    assert summary(stdout)["counts"] == "2 done, 2 to run"
    assert {r["spec"]["epochs"] for r in before.values()} == {1}
    # The long runs were stopped, not left running on the workers, and wrote nothing.
    assert running() == []
    time.sleep(2.0)
    assert records(out) == before
    # The workers are still there for the next suite.
    assert cluster.wait_for_workers(2, seconds=10) == cluster.workers


def test_a_run_past_the_time_limit_is_stopped_on_its_worker_and_failed(cluster, tmp_path):
    suite = SHORT_AND_LONG.replace("epochs = [1, 2000]", "epochs = 2000").replace(
        "seeds = [0, 1]", "seeds = [0]"
    )
    (tmp_path / "s.toml").write_text(suite)
    started = time.monotonic()
    done = dstbench(
        "suite", str(tmp_path / "s.toml"), "-o", str(tmp_path / "out"), "--timeout", "4",
        "--device", "cpu", "--executor", f"dask[address={cluster.address}]",
    )  # fmt: skip
    assert done.returncode == 1, done.stdout + done.stderr
    assert time.monotonic() - started < 60  # not the 2000 epochs
    [record] = records(tmp_path / "out").values()
    assert record["status"] == "failed"
    message = record["error"]["message"]
    assert message.startswith("timed out after "), message
    assert "(the time limit is 4.0s; a stuck plugin or a slow setup?)" in message
    assert summary(done.stdout)["counts"] == "1 failed"
    assert all(not run_processes(cluster.processes[name].pid) for name in cluster.workers)


def listening_addresses(pid: int) -> list[tuple[str, int]]:
    """The IPv4 (host, port) pairs that process ``pid`` listens on (Linux /proc)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            target = os.readlink(fd)
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    found = []
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[3] == "0A" and fields[9] in inodes:  # 0A: LISTEN
            host, port = fields[1].split(":")
            octets = [str(int(host[i : i + 2], 16)) for i in (6, 4, 2, 0)]
            found.append((".".join(octets), int(port, 16)))
    return found


def test_the_suites_own_local_cluster_is_on_loopback_without_a_dashboard():
    """What `dask` without an address (and benchmarks/cluster_overhead.py) starts."""
    import urllib.error
    import urllib.request

    require_dask()
    from dstbench.suite.dask_executor import local_cluster

    cluster = local_cluster(1)
    try:
        addresses = [cluster.scheduler_address, *(w.address for w in cluster.workers.values())]
        assert all(a.startswith("tcp://127.0.0.1:") for a in addresses), addresses
        # Nothing of this process listens on another interface.
        assert listening_addresses(os.getpid()) and all(
            host == "127.0.0.1" for host, _ in listening_addresses(os.getpid())
        ), listening_addresses(os.getpid())
        with pytest.raises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(cluster.dashboard_link, timeout=10)
        caught.value.close()
        assert caught.value.code == 404
    finally:
        cluster.close()
