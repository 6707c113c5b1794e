"""What a bench run's report says about the code it measured."""

from __future__ import annotations

from bench.runner import _commit, _commit_during


def test_a_run_names_the_commit_its_servers_started_from_and_says_if_head_moved() -> None:
    """A run reads the commit before any server starts: a merge while the peers run
    (the servers started later take the newer code) is named, not hidden."""
    now = _commit()
    assert now and _commit_during(now) == now
    assert _commit_during("0000000") == f"0000000 (HEAD moved to {now} during the run)"
