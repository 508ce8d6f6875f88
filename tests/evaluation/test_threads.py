"""The trainers' thread count: the CPUs other processes leave free, or what ACTSEARCH_THREADS says."""
from __future__ import annotations

import subprocess
import sys
import time

import pytest
import torch

from actsearch.evaluation import CHECK_EVERY, THREADS_ENV, ThreadPolicy, busy_elsewhere, get_fidelity, train_one, usable_cpus

HERE = "actsearch.evaluation._threads"  # where the policy looks the machine up


def test_a_fixed_count_is_used_and_the_callers_count_restored(monkeypatch: pytest.MonkeyPatch) -> None:
    before = torch.get_num_threads()
    monkeypatch.setenv(THREADS_ENV, "1")
    with ThreadPolicy() as policy:
        assert torch.get_num_threads() == 1 and policy.adapt(force=True) == 1
    assert torch.get_num_threads() == before


def test_the_automatic_count_leaves_busy_cpus_to_their_processes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(THREADS_ENV, raising=False)
    monkeypatch.setattr(f"{HERE}.usable_cpus", lambda: 8)
    monkeypatch.setattr(f"{HERE}.busy_elsewhere", lambda: 3)
    with ThreadPolicy() as policy:
        assert torch.get_num_threads() == 5
        monkeypatch.setattr(f"{HERE}.busy_elsewhere", lambda: 0)  # the other processes ended
        assert policy.adapt() == 5  # looked at again only every CHECK_EVERY seconds …
        policy.last -= CHECK_EVERY
        assert policy.adapt() == 8  # … then all of them again
        monkeypatch.setattr(f"{HERE}.busy_elsewhere", lambda: 20)
        assert policy.adapt(force=True) == 1  # never fewer than one
    with ThreadPolicy(limit=2):
        assert torch.get_num_threads() == 1  # 20 busy: one


def test_a_busy_process_is_seen() -> None:
    """The count from /proc/stat: a spinning child is a busy CPU elsewhere, this process is not."""
    spin = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.5)
        assert busy_elsewhere() >= 1
        with ThreadPolicy():
            assert torch.get_num_threads() <= max(1, usable_cpus() - 1)
    finally:
        spin.kill()
        spin.wait()


def test_training_follows_the_policy_and_gives_the_count_back(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(THREADS_ENV, "1")
    before = torch.get_num_threads()
    seen: list[int] = []
    train_one("relu", get_fidelity("smoke").replace(steps=20, eval_every=10), report=lambda s, a: bool(
        seen.append(torch.get_num_threads())))
    assert seen == [1, 1] and torch.get_num_threads() == before
