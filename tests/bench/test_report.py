import subprocess
from pathlib import Path

import pytest

from bench.report import _git_commit


def _git(*args: str) -> str:
    done = subprocess.run(["git", *args], capture_output=True, text=True, check=True)
    return done.stdout.strip()


def test_the_commit_says_when_the_code_differs_from_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    _git("init", "-q")
    (tmp_path / "bench" / "results").mkdir(parents=True)
    for name in ("code.py", "BENCHMARKS.md", "bench/results/a.json"):
        (tmp_path / name).write_text("v1\n")
    _git("add", ".")
    _git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "one")
    head = _git("rev-parse", "--short", "HEAD")
    assert _git_commit() == head
    # what a benchmark writes does not count, nor do untracked files
    (tmp_path / "bench/results/a.json").write_text("v2\n")
    (tmp_path / "BENCHMARKS.md").write_text("v2\n")
    (tmp_path / "notes.txt").write_text("new\n")
    assert _git_commit() == head
    (tmp_path / "code.py").write_text("v2\n")
    assert _git_commit() == f"{head}+uncommitted"
