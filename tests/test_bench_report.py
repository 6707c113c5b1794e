"""What a bench run's report says about the code it measured."""

from __future__ import annotations

import asyncio
import sys
from datetime import UTC, datetime
from pathlib import Path

import orjson

from bench.paired import Paired, Side, write
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


def test_a_paired_run_reports_the_median_of_its_pairs_and_each_sides_medians(
    tmp_path: Path,
) -> None:
    """`bench paired`: each pair's ratio is ours ÷ theirs of the same pair (not of the
    sides' totals), and the report gives their median and range beside each side's
    medians of req/s, server CPU and p99."""
    ours = Side(rps=[900.0, 1200.0, 1000.0], p99_ms=[12.0, 30.0, 11.0], cpu_ms=[0.3, 0.5, 0.4])
    theirs = Side(rps=[1000.0, 1000.0, 800.0], p99_ms=[9.0, 10.0, 40.0], cpu_ms=[0.2, 0.2, 0.3])
    result = Paired("dashboard/fixed", ours, theirs, against="limit over HTTP")
    assert result.ratios == [0.9, 1.2, 1.25]
    started = datetime(2026, 12, 3, 19, 0, tzinfo=UTC)
    path = write(tmp_path, [result], started, "abc1234", "3 pairs of 4 s", token=True)
    table = path.read_text()
    assert "| workload | ours ÷ limit over HTTP (median) |" in table
    row = "| dashboard/fixed | **1.20×** | 0.90–1.25 | 1,000 | 1,000 | 0.40 / 0.20 | 12.0 / 10.0 | 0 |"
    assert row in table
    assert "Commit abc1234" in table and "a bearer token" in table
    saved = orjson.loads((tmp_path / "paired.json").read_bytes())
    assert saved["results"][0]["ours"]["rps"] == [900.0, 1200.0, 1000.0]
    assert saved["results"][0]["against"] == "limit over HTTP"
