"""Server subprocesses: each in its own process group, always stopped on the way out.

Every process started here is registered; ``stop_all`` (called from ``finally`` blocks,
``atexit`` and the SIGTERM handler) ends the whole group of each, so a uvicorn or node
server never outlives the benchmark, even on Ctrl-C.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

import httpx

_running: list[ManagedProcess] = []


class BenchError(RuntimeError):
    """A problem the user can fix (missing tool, busy port, server that does not start)."""


@dataclass
class ManagedProcess:
    name: str
    argv: Sequence[str]
    env: dict[str, str]
    log_path: Path
    cwd: Path | None = None
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("wb")
        try:
            self.process = subprocess.Popen(
                list(self.argv),
                env=self.env,
                cwd=self.cwd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: killpg reaches its children
            )
        finally:
            log.close()
        _running.append(self)

    @property
    def pid(self) -> int:
        if self.process is None:
            raise BenchError(f"{self.name} is not started")
        return self.process.pid

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, timeout: float = 10.0) -> None:
        process, self.process = self.process, None
        if self in _running:
            _running.remove(self)
        if process is None or process.poll() is not None:
            return
        for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, sig)
            try:
                process.wait(wait)
                return
            except subprocess.TimeoutExpired:
                continue


def stop_all() -> None:
    for process in list(reversed(_running)):
        process.stop()


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def install_cleanup() -> None:
    """Stop every registered process at exit and turn SIGTERM/SIGHUP into KeyboardInterrupt
    (SIGINT too, even where a shell started us with it ignored)."""
    atexit.register(stop_all)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _on_sigterm)


def ensure_port_free(port: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            raise BenchError(
                f"port {port} is in use (a server left from another run?); "
                f"free it or pick other ports with --port-base"
            ) from None


def wait_for_graphql(process: ManagedProcess, url: str, timeout: float = 60.0) -> None:
    """Wait until the server answers ``{ __typename }`` (its schema is ready)."""
    deadline = time.monotonic() + timeout
    last_error = ""
    with httpx.Client(timeout=5.0) as client:
        while time.monotonic() < deadline:
            if not process.alive():
                raise BenchError(f"{process.name} exited during start-up:\n{process.log_tail()}")
            try:
                response = client.post(url, json={"query": "{ __typename }"})
                if response.status_code == 200 and b'"data"' in response.content:
                    return
                last_error = f"HTTP {response.status_code}: {response.text[:200]}"
            except httpx.HTTPError as error:
                last_error = str(error) or type(error).__name__
            time.sleep(0.25)
    raise BenchError(
        f"{process.name} did not answer at {url} within {timeout:.0f} s ({last_error})\n"
        f"{process.log_tail()}"
    )


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # Field 4 (ppid) follows the parenthesised command, which may contain spaces.
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.append(int(entry.name))
    return found


def rss_kib(pid: int) -> int | None:
    """Resident memory of a process and its descendants (VmRSS from /proc), in KiB."""
    total, seen, pending = 0, set(), [pid]
    while pending:
        current = pending.pop()
        if current in seen:
            continue
        seen.add(current)
        try:
            for line in Path(f"/proc/{current}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
                    break
        except (OSError, ValueError):
            if current == pid:
                return None
            continue
        pending.extend(_children(current))
    return total


class RssSampler:
    """Samples a process tree's RSS in a background thread; ``peak_kib`` after ``stop``."""

    def __init__(self, pid: int, interval: float = 0.25) -> None:
        import threading

        self.pid = pid
        self.interval = interval
        self.peak_kib: int | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"rss-{pid}", daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            value = rss_kib(self.pid)
            if value is not None:
                self.peak_kib = max(self.peak_kib or 0, value)
            self._stop.wait(self.interval)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def process_tree(pid: int) -> set[int]:
    found, pending = set(), [pid]
    while pending:
        current = pending.pop()
        if current not in found:
            found.add(current)
            pending.extend(_children(current))
    return found


def _cpu_ticks(pid: int) -> int | None:
    """utime + stime + cutime + cstime of a process, in clock ticks."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return sum(int(x) for x in fields[11:15])


def tree_cpu_seconds(pid: int) -> float | None:
    """CPU time (user + system) the process and its children have used so far."""
    ticks = [t for child in process_tree(pid) if (t := _cpu_ticks(child)) is not None]
    return sum(ticks) / os.sysconf("SC_CLK_TCK") if ticks else None


def _cpu_ticks_of_machine() -> tuple[int, int]:
    """Clock ticks all CPUs spent since boot, as (busy: user, nice, system, irq,
    softirq, steal; idle: idle and iowait)."""
    values = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    idle = values[3] + values[4]
    return sum(values) - idle, idle


class CpuWatch:
    """While a run lasts: the share of the machine's CPU that *other* processes used (all
    busy CPU time minus that of the given processes: ours, the benchmark, its servers
    and their PostgreSQL backends), the share left idle, both over wall time × CPUs
    (0.25 on 2 CPUs = half a core), and the CPU seconds of the processes
    ``database_pids`` names (the bench database's PostgreSQL). Idle CPU during a run
    that did not reach its target means the server waited on something other than CPU."""

    def __init__(
        self,
        own_pids: Callable[[], Awaitable[set[int]]],
        database_pids: Callable[[], Awaitable[set[int]]] | None = None,
    ) -> None:
        self.own_pids = own_pids
        self.database_pids = database_pids
        self.share: float | None = None
        self.idle_share: float | None = None
        self.database_seconds: float | None = None

    async def __aenter__(self) -> CpuWatch:
        pids = await self.own_pids()
        self._own = {pid: ticks for pid in pids if (ticks := _cpu_ticks(pid)) is not None}
        self._database = await self._database_ticks({})
        self._busy, self._idle = _cpu_ticks_of_machine()
        self._began = time.monotonic()
        return self

    async def _database_ticks(self, known: dict[int, int]) -> dict[int, int]:
        """Each database process's ticks so far; those of ``known`` that ended keep
        their value there (a backend that ended during a run is not counted: the
        servers' pools keep theirs open while they run)."""
        if self.database_pids is None:
            return {}
        found = dict(known)
        for pid in await self.database_pids():
            ticks = _cpu_ticks(pid)
            if ticks is not None:
                found[pid] = ticks
        return found

    async def __aexit__(self, *exc: object) -> None:
        busy, idle = _cpu_ticks_of_machine()
        busy -= self._busy
        idle -= self._idle
        wall = time.monotonic() - self._began
        pids = await self.own_pids() | set(self._own)
        own = 0
        for pid in pids:
            ticks = _cpu_ticks(pid)
            if ticks is not None:
                own += ticks - self._own.get(pid, 0)
        clock = os.sysconf("SC_CLK_TCK")
        capacity = wall * clock * (os.cpu_count() or 1)
        self.share = max(0.0, (busy - own) / capacity) if capacity else None
        self.idle_share = max(0.0, idle / capacity) if capacity else None
        if self.database_pids is not None:
            after = await self._database_ticks(self._database)
            spent = sum(ticks - self._database.get(pid, 0) for pid, ticks in after.items())
            self.database_seconds = spent / clock
