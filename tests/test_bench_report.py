"""What a bench run's report says about the code it measured."""

from __future__ import annotations

import asyncio
import sys

from bench.processes import CpuWatch
from bench.runner import _commit, _commit_during


def test_a_run_names_the_commit_its_servers_started_from_and_says_if_head_moved() -> None:
    """A run reads the commit before any server starts: a merge while the peers run
    (the servers started later take the newer code) is named, not hidden."""
    now = _commit()
    assert now and _commit_during(now) == now
    assert _commit_during("0000000") == f"0000000 (HEAD moved to {now} during the run)"


async def test_a_run_measures_the_databases_cpu_and_what_the_machine_left_idle() -> None:
    """The watch counts the CPU of the processes it is told are the database's (here a
    child that burns a known amount of work, then waits), and the idle share is a share."""
    burner = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "import sys, time\n"
        "start = time.process_time()\n"
        "while time.process_time() - start < 0.3: pass\n"
        "print('done', flush=True)\n"
        "sys.stdin.readline()\n",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    assert burner.stdout is not None and burner.stdin is not None

    async def nothing_of_ours() -> set[int]:
        return set()

    async def the_burner() -> set[int]:
        return {burner.pid}

    try:
        async with CpuWatch(nothing_of_ours, the_burner) as watch:
            assert await burner.stdout.readline() == b"done\n"
    finally:
        burner.stdin.write(b"\n")
        await burner.wait()
    assert watch.database_seconds is not None and 0.25 <= watch.database_seconds <= 2.0
    assert watch.idle_share is not None and 0.0 <= watch.idle_share <= 1.0
    assert watch.share is not None and watch.share >= 0.0
