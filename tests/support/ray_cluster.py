"""A separate multi-node Ray cluster for tests: a head and one worker node, each a `ray start` process tree.

    with RayCluster() as cluster, cluster.driver():   # start-up 11-17 s on the 2-core CI machine
        ray.init(address=cluster.address)              # the GCS address, host:port
        ...                                            # cluster.driver() runs ray.shutdown() after

Both nodes run on this machine, but each has its own temp dir and its own working directory, so a task
on the worker node sees another cwd than the driver. Every port is chosen free (never Ray's defaults), so
the cluster lives beside a local `ray.init()` of the same test session or of another process. With
`hide_paths`, the nodes see the given folders as empty although they share this machine's disk.

Stopping never uses `ray stop` (it kills every Ray process of the user). A process belongs to the
cluster when its command line or cwd lies in the cluster's private folder, its environment holds the
cluster's marker variable, or it is in the process group of one of the cluster's `ray start` commands.
Those get SIGTERM, then SIGKILL after 2 s (Ray's raylet and GCS take over 10 s to obey SIGTERM). An
`atexit` hook does the same for a cluster whose `stop()` was never reached, and a watchdog process
does it when the test process dies without running either (SIGKILL, a CI timeout's SIGTERM).
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import os
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
import weakref
from collections import Counter
from collections.abc import Collection, Iterator, Sequence
from pathlib import Path
from types import TracebackType

import psutil

MARKER_VAR = "LORAFORGE_TEST_RAY_CLUSTER"
_LIVE: weakref.WeakSet[RayCluster] = weakref.WeakSet()


def _free_ports(count: int) -> list[int]:
    """Distinct free ports (binding all at once so the OS cannot hand out one twice)."""
    socks = []
    try:
        for _ in range(count):
            sock = socket.socket()
            sock.bind(("", 0))
            socks.append(sock)
        return [sock.getsockname()[1] for sock in socks]
    finally:
        for sock in socks:
            sock.close()


class RayClusterError(RuntimeError):
    pass


class RayCluster:
    """A head node and `worker_nodes` more nodes, started with `ray start`, stopped by process identity.

    Attributes once started:
      address: GCS address (host:port) for `ray.init(address=...)` or LORAFORGE_RAY_ADDRESS.
      root: the cluster's private folder (temp dirs of the nodes, the worker nodes' cwds).
      head_cwd / worker_cwds: working directories of the head's and the worker nodes' processes.
      node_manager_ports: node name ("head", "worker0", ...) -> its raylet port, as `ray.nodes()` shows
        it in "NodeManagerPort".
      driver_env: variables a driver in this process needs (RAY_AUTH_MODE) to join.
      startup_seconds: wall time of `start()`.
      hide_paths: folders the cluster's processes see as empty (a tmpfs in a private mount namespace,
        Linux as root only; empty when that is impossible here, see `can_hide_paths()`). A test that
        hides its input folder proves that workers never read the driver's disk, though the nodes
        share it.
    """

    def __init__(
        self,
        *,
        worker_nodes: int = 1,
        head_cpus: int = 1,
        worker_cpus: int = 1,
        auth_mode: str = "disabled",
        object_store_bytes: int = 150 * 1024 * 1024,
        start_timeout_s: float = 120.0,
        stop_grace_s: float = 2.0,
        keep_files: bool = False,
        hide_paths: Sequence[str | os.PathLike[str]] = (),
    ) -> None:
        self.worker_nodes = worker_nodes
        self.head_cpus = head_cpus
        self.worker_cpus = worker_cpus
        self.auth_mode = auth_mode
        self.object_store_bytes = object_store_bytes
        self.start_timeout_s = start_timeout_s
        self.stop_grace_s = stop_grace_s
        self.keep_files = keep_files
        self.requested_hidden = [Path(path).resolve() for path in hide_paths]
        self.hide_paths: list[Path] = []
        self.marker = uuid.uuid4().hex
        self.address = ""
        self.root = Path()
        self.head_cwd = Path()
        self.worker_cwds: list[Path] = []
        self.startup_seconds = 0.0
        self.node_manager_ports: dict[str, int] = {}
        self._pgids: set[int] = set()
        self._began_epoch = 0.0
        self._watchdog: subprocess.Popen[bytes] | None = None
        self._started = False

    # ------------------------------------------------------------------ lifecycle

    def __enter__(self) -> RayCluster:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def driver_env(self) -> dict[str, str]:
        return {"RAY_AUTH_MODE": self.auth_mode}

    @contextlib.contextmanager
    def driver(self) -> Iterator[RayCluster]:
        """This process as a driver of the cluster: disconnected from any Ray before and after.

        Inside, `RAY_AUTH_MODE` is the cluster's; `ray.init(address=self.address)` (or code that calls
        it, such as `ensure_ray`) joins. On exit `ray.shutdown()` runs and the variable is restored.
        Ray 2.60 caches the auth mode of the process when it first reads it, and a later local
        `ray.init()` then starts its GCS in token mode but talks to it without a token (InvalidAuthToken),
        so the cache is refreshed both ways.
        """
        import ray

        if ray.is_initialized():
            ray.shutdown()
        saved = {key: os.environ.get(key) for key in self.driver_env}
        os.environ.update(self.driver_env)
        _refresh_ray_config()
        try:
            yield self
        finally:
            ray.shutdown()
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
            _refresh_ray_config()

    def start(self) -> RayCluster:
        if self._started:
            raise RayClusterError("cluster already started")
        missing = [path for path in self.requested_hidden if not path.is_dir()]
        if missing:
            raise RayClusterError(f"hide_paths must be existing folders: {missing}")
        self.hide_paths = self.requested_hidden if can_hide_paths() else []
        began = time.monotonic()
        self._began_epoch = time.time()
        # Short root: Ray puts Unix sockets under <temp-dir>/session_<date>_<pid>/sockets (108-byte limit).
        self.root = Path(tempfile.mkdtemp(prefix="lfray-", dir="/tmp"))
        self.head_cwd = self.root / "head-cwd"
        self.head_cwd.mkdir()
        self._started = True
        _LIVE.add(self)
        try:
            self._start_watchdog()
            gcs_port, *head_ports = _free_ports(9)
            self.node_manager_ports["head"] = head_ports[2]
            self._ray_start(
                "head",
                self.head_cwd,
                [
                    "--head",
                    f"--port={gcs_port}",
                    f"--num-cpus={self.head_cpus}",
                    "--include-dashboard=false",
                    f"--dashboard-port={head_ports[0]}",
                    f"--ray-client-server-port={head_ports[1]}",
                    f"--node-manager-port={head_ports[2]}",
                    f"--object-manager-port={head_ports[3]}",
                    f"--dashboard-agent-listen-port={head_ports[4]}",
                    f"--dashboard-agent-grpc-port={head_ports[5]}",
                    f"--runtime-env-agent-port={head_ports[6]}",
                    f"--metrics-export-port={head_ports[7]}",
                ],
            )
            address_file = self.root / "head" / "ray_current_cluster"
            self.address = address_file.read_text().strip()
            for index in range(self.worker_nodes):
                cwd = self.root / f"worker{index}-cwd"
                cwd.mkdir()
                self.worker_cwds.append(cwd)
                ports = _free_ports(6)
                self.node_manager_ports[f"worker{index}"] = ports[0]
                self._ray_start(
                    f"worker{index}",
                    cwd,
                    [
                        f"--address={self.address}",
                        f"--num-cpus={self.worker_cpus}",
                        f"--node-manager-port={ports[0]}",
                        f"--object-manager-port={ports[1]}",
                        f"--dashboard-agent-listen-port={ports[2]}",
                        f"--dashboard-agent-grpc-port={ports[3]}",
                        f"--runtime-env-agent-port={ports[4]}",
                        f"--metrics-export-port={ports[5]}",
                    ],
                )
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - began
        return self

    def stop(self) -> None:
        """Terminate every process of this cluster (only this cluster's), then remove its files."""
        if not self._started:
            return
        try:
            if self._watchdog is not None:
                self._watchdog.kill()
                self._watchdog.wait()
                self._watchdog = None
            self._kill_all()
        finally:
            self._started = False
            _LIVE.discard(self)
            if not self.keep_files and self.root != Path():
                shutil.rmtree(self.root, ignore_errors=True)

    # ------------------------------------------------------------------ details

    def _env(self) -> dict[str, str]:
        env = {key: value for key, value in os.environ.items() if not key.startswith("RAY_")}
        env.update(
            {
                "RAY_AUTH_MODE": self.auth_mode,
                "RAY_USAGE_STATS_ENABLED": "0",
                # Keep the workers' priority: Ray lowers it by default, which starves them on 2 cores.
                "RAY_worker_niceness": "0",
                "RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO": "0",
            }
        )
        env.pop(MARKER_VAR, None)
        env[MARKER_VAR] = self.marker  # last: setproctitle overwrites the environment from its start
        return env

    def _start_watchdog(self) -> None:
        """A small process that stops the cluster if this process dies without `stop()` (SIGKILL, SIGTERM)."""
        self._watchdog = subprocess.Popen(
            [
                sys.executable,
                str(Path(__file__).resolve()),
                "--watchdog",
                str(os.getpid()),
                self.marker,
                str(self.root),
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # a Ctrl-C or group kill of the tests must not take it down first
        )

    def _ray_start(self, name: str, cwd: Path, args: list[str]) -> None:
        ray_exe = Path(sys.executable).with_name("ray")
        command = [
            str(ray_exe) if ray_exe.exists() else "ray",
            "start",
            f"--temp-dir={self.root / name}",
            "--num-gpus=0",
            f"--object-store-memory={self.object_store_bytes}",
            # Any free port for workers: two nodes on one host must not share Ray's default range.
            "--min-worker-port=0",
            "--max-worker-port=0",
            "--disable-usage-stats",
            *args,
        ]
        if self.hide_paths:
            command = _hiding(command, self.hide_paths)
        log_path = self.root / f"{name}.start.log"
        with open(log_path, "wb") as log:
            process = subprocess.Popen(
                command,
                cwd=cwd,
                env=self._env(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: everything it spawns is findable
            )
        self._pgids.add(process.pid)
        try:
            code = process.wait(timeout=self.start_timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            raise RayClusterError(
                f"`ray start` ({name}) did not finish in {self.start_timeout_s:.0f} s:\n{_tail(log_path)}"
            ) from None
        if code != 0:
            raise RayClusterError(f"`ray start` ({name}) failed with exit code {code}:\n{_tail(log_path)}")

    def task_names(self) -> dict[str, Counter[str]]:
        """Node name ("head", "worker0", ...) -> how often each task name started in its worker logs.

        Ray writes `:task_name:<function>` into a worker's log as a task begins; this tells which node
        ran what without any hook in the code under test.
        """
        return self._logged(":task_name:")

    def actor_names(self) -> dict[str, Counter[str]]:
        """Node name -> how many actors of each class were created there (Ray logs `:actor_name:<class>`)."""
        return self._logged(":actor_name:")

    def _logged(self, prefix: str) -> dict[str, Counter[str]]:
        found: dict[str, Counter[str]] = {}
        for node in self.node_manager_ports:
            counts: Counter[str] = Counter()
            for path in (self.root / node / "session_latest" / "logs").glob("worker-*.out"):
                with contextlib.suppress(OSError):
                    for line in path.read_text(errors="replace").splitlines():
                        if line.startswith(prefix):
                            counts[line.removeprefix(prefix)] += 1
            found[node] = counts
        return found

    def processes(self) -> list[psutil.Process]:
        """Live processes of this cluster (never this process or its ancestors).

        A process is ours when its command line or its cwd names our root folder, its environment
        holds our marker (read raw: Ray's setproctitle clobbers the start of it, and psutil's parser
        then stops early), or it sits in a process group of one of our `ray start` commands and was
        born after it.
        """
        own = {os.getpid(), *(parent.pid for parent in psutil.Process().parents())}
        return _find_processes(
            str(self.root), self.marker, exclude=own, pgids=self._pgids, born_after=self._began_epoch - 1
        )

    def _kill_all(self) -> None:
        procs = self.processes()
        for proc in procs:
            with contextlib.suppress(psutil.Error):
                proc.terminate()
        psutil.wait_procs(procs, timeout=self.stop_grace_s)
        # SIGKILL whatever is left, sweeping again for anything spawned meanwhile.
        for _ in range(5):
            procs = self.processes()
            if not procs:
                return
            for proc in procs:
                with contextlib.suppress(psutil.Error):
                    proc.kill()
            psutil.wait_procs(procs, timeout=5)
        leftover = ", ".join(f"{proc.pid}" for proc in self.processes())
        if leftover:
            raise RayClusterError(f"Ray processes of {self.root} survived SIGKILL: {leftover}")

    def __repr__(self) -> str:
        return f"RayCluster(address={self.address!r}, root={str(self.root)!r}, started={self._started})"


def _find_processes(
    root: str,
    marker: str,
    *,
    exclude: Collection[int] = (),
    pgids: Collection[int] = (),
    born_after: float = 0.0,
) -> list[psutil.Process]:
    needle = f"{MARKER_VAR}={marker}".encode()
    found = []
    for proc in psutil.process_iter(["pid", "cmdline", "create_time"]):
        if proc.info["pid"] in exclude:
            continue
        try:
            if proc.status() == psutil.STATUS_ZOMBIE:
                continue
            if (
                any(root in arg for arg in proc.info["cmdline"] or ())
                or (proc.cwd() + os.sep).startswith(root + os.sep)
                or _environ_holds(proc, needle)
                or (os.getpgid(proc.pid) in pgids and proc.info["create_time"] >= born_after)
            ):
                found.append(proc)
        except (psutil.Error, OSError):
            continue
    return found


def _environ_holds(proc: psutil.Process, needle: bytes) -> bool:
    try:
        with open(f"/proc/{proc.pid}/environ", "rb") as raw:
            return needle in raw.read()
    except FileNotFoundError:  # no /proc: not Linux
        name, _, value = needle.decode().partition("=")
        return proc.environ().get(name) == value


def _watchdog(owner_pid: int, marker: str, root: str) -> None:
    """Wait for the test process to end; then end whatever of its cluster is left, and remove its files."""
    with contextlib.suppress(psutil.Error):
        owner = psutil.Process(owner_pid)
        while owner.is_running() and owner.status() != psutil.STATUS_ZOMBIE:
            time.sleep(1)
    for action, grace in (("terminate", 2), ("kill", 5), ("kill", 5)):
        procs = _find_processes(root, marker, exclude={os.getpid()})
        for proc in procs:
            with contextlib.suppress(psutil.Error):
                getattr(proc, action)()
        psutil.wait_procs(procs, timeout=grace)
    shutil.rmtree(root, ignore_errors=True)


def _refresh_ray_config() -> None:
    """Make Ray's cached config of this process read the environment again (as Ray itself does)."""
    from ray._raylet import Config

    Config.initialize("")


@functools.cache
def can_hide_paths() -> bool:
    """Whether this process may start commands in a private mount namespace (root, `unshare` present)."""
    if sys.platform != "linux" or not shutil.which("unshare"):
        return False
    with tempfile.TemporaryDirectory(prefix="lfray-probe-") as folder:
        probe = subprocess.run(
            [
                "unshare",
                "--mount",
                "--propagation",
                "private",
                "sh",
                "-c",
                _mount_script([Path(folder)]) + "true",
            ],
            capture_output=True,
            timeout=30,
        )
    return probe.returncode == 0


def _mount_script(paths: Sequence[Path]) -> str:
    return "".join(
        f"mount -t tmpfs -o size=1m,mode=0555 lfray-hidden {shlex.quote(str(path))} && " for path in paths
    )


def _hiding(command: list[str], paths: Sequence[Path]) -> list[str]:
    """`command` in its own mount namespace, where each folder of `paths` is an empty read-only tmpfs.

    `unshare` and `sh` exec into `ray start`, so its pid (and process group) stays the one Popen saw.
    """
    script = _mount_script(paths) + "exec " + shlex.join(command)
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c", script]


def _tail(path: Path, chars: int = 4000) -> str:
    try:
        return path.read_text(errors="replace")[-chars:]
    except OSError:
        return "(no log)"


@atexit.register
def _stop_leftovers() -> None:
    for cluster in list(_LIVE):
        with contextlib.suppress(Exception):
            cluster.stop()


if __name__ == "__main__" and sys.argv[1:2] == ["--watchdog"]:
    _watchdog(int(sys.argv[2]), sys.argv[3], sys.argv[4])
