"""`actsearch dashboard`: optuna-dashboard serves a search's study and its plots (read back
through the dashboard's JSON API from a server started on a free loopback port)."""
from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Iterator

import pytest

from actsearch.cli import main
from actsearch.search import free_port

ROOT = Path(__file__).resolve().parent.parent


def get(url: str, timeout: float = 10.0) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=timeout) as r:  # noqa: S310 (loopback only)
        return r.status, r.read()


@contextlib.contextmanager
def dashboard_running(storage: str, cwd: Path, wait: float = 90.0) -> Iterator[str]:
    """``actsearch dashboard`` in a subprocess on a free port; yields its base URL, then stops it."""
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "actsearch", "dashboard", "--storage", storage,
                             "--host", "127.0.0.1", "--port", str(port)], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + wait
        while True:
            try:
                if get(f"{base}/api/studies", timeout=2)[0] == 200:
                    break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                out = proc.stdout.read().decode() if proc.stdout else ""
                raise AssertionError(f"dashboard did not come up (exit {proc.poll()}): {out[-2000:]}")
            time.sleep(0.3)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def check_study_via_api(base: str, study_name: str) -> dict[str, Any]:
    """The study, its trials' user attributes and one trial's plot, through the JSON API."""
    status, body = get(f"{base}/api/studies")
    summaries = json.loads(body)["study_summaries"]
    match = [s for s in summaries if s["study_name"] == study_name]
    assert match, [s["study_name"] for s in summaries]
    study_id = match[0]["study_id"]
    detail = json.loads(get(f"{base}/api/studies/{study_id}")[1])
    trials = detail["trials"]
    assert trials
    attrs = [{a["key"]: a["value"] for a in t["user_attrs"]} for t in trials]
    assert all("expression" in a and "key" in a for a in attrs)
    assert any("accuracy_mean" in a for a in attrs)
    with_plot = [t for t in trials if t.get("artifacts")]
    assert with_plot, "the search uploads an f/f' plot per trained trial"
    art = with_plot[0]["artifacts"][0]
    status, png = get(f"{base}/artifacts/{study_id}/{with_plot[0]['trial_id']}/{art['artifact_id']}")
    assert status == 200 and png[:4] == b"\x89PNG"
    return detail


@pytest.mark.slow
def test_dashboard_serves_the_study_and_its_plots(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    db = str(tmp_path / "d.db")
    assert main(["search", "--space", "tiny", "--fidelity", "smoke", "--trials", "4", "--batch", "4",
                 "--storage", db, "--study", "dash", "--quiet"]) == 0
    assert (tmp_path / "artifacts").is_dir()  # next to the storage
    with dashboard_running(db, tmp_path) as base:
        check_study_via_api(base, "dash")


def test_dashboard_on_a_missing_storage_is_one_line(tmp_path: Path, capsys) -> None:
    assert main(["dashboard", "--storage", str(tmp_path / "none.db"), "--port", "0"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("actsearch: error: no storage at") and err.count("\n") == 1


def test_free_port_is_bindable() -> None:
    import socket

    port = free_port()
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))
