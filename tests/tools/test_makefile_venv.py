"""The Makefile's Python on a fresh machine: without PYTHON (or with PYTHON= empty), every
Python target uses .venv, made once on demand from BOOTSTRAP_PYTHON; PYTHON=... overrides.

A stand-in bootstrap interpreter records its calls, and its `-m venv DIR` makes a
stand-in DIR/bin/python that records its own, so no real environment is built.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support.processes import REPO_ROOT

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")

_RECORDER = '#!/bin/sh\nprintf "%s\\n" "{name} $*" >> "{calls}"\n'
_BOOTSTRAP = (
    "#!/bin/sh\n"
    'printf "%s\\n" "bootstrap $*" >> "{calls}"\n'
    'if [ "$1 $2" = "-m venv" ]; then mkdir -p "$3/bin" && cp "{venv_python}" "$3/bin/python"; fi\n'
)


@pytest.fixture
def scratch(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    root.mkdir()
    for name in ("Makefile", "requirements.txt", "requirements-dev.txt"):
        shutil.copyfile(REPO_ROOT / name, root / name)
    return root


@pytest.fixture
def bootstrap(tmp_path: Path) -> Path:
    calls = tmp_path / "calls"
    venv_python = tmp_path / "venv-python"
    venv_python.write_text(_RECORDER.format(name="venv-python", calls=calls), encoding="utf-8")
    script = tmp_path / "bootstrap-python"
    script.write_text(_BOOTSTRAP.format(calls=calls, venv_python=venv_python), encoding="utf-8")
    for path in (venv_python, script):
        path.chmod(0o755)
    return script


def make(directory: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if key not in ("MAKEFLAGS", "MAKELEVEL", "PYTHON")}
    return subprocess.run(
        ["make", "--no-print-directory", "-C", str(directory), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def calls(bootstrap: Path) -> list[str]:
    path = bootstrap.parent / "calls"
    return path.read_text(encoding="utf-8").splitlines() if path.exists() else []


@pytest.mark.parametrize("python_arg", [[], ["PYTHON="]], ids=["unset", "empty"])
def test_test_makes_the_venv_once_then_runs_pytest_in_it(scratch: Path, bootstrap: Path, python_arg: list[str]) -> None:
    args = ["test", *python_arg, f"BOOTSTRAP_PYTHON={bootstrap}", "SANDBOX=/nonexistent"]
    done = make(scratch, *args)

    assert done.returncode == 0, done.stdout + done.stderr
    made = calls(bootstrap)
    assert made[0] == "bootstrap -m venv .venv"
    assert made[1] == "venv-python -m pip install -q -r requirements-dev.txt"
    assert made[2].startswith("venv-python -c ")  # the .pth that puts the repository on the path
    assert made[3:] == ["venv-python -m pytest"]
    assert (scratch / ".venv" / ".installed").exists()

    again = make(scratch, "deps", *python_arg, f"BOOTSTRAP_PYTHON={bootstrap}")
    assert again.returncode == 0 and calls(bootstrap) == made  # up to date: nothing reinstalled


def test_lint_and_bench_use_the_venv_too(scratch: Path, bootstrap: Path) -> None:
    for target in ("lint", "bench"):
        assert make(scratch, target, f"BOOTSTRAP_PYTHON={bootstrap}").returncode == 0
    assert calls(bootstrap)[3:] == ["venv-python -m ruff check .", "venv-python -m mypy", "venv-python -m bench"]


def test_a_missing_venv_module_says_what_to_install(scratch: Path, tmp_path: Path) -> None:
    broken = tmp_path / "no-venv-python"
    broken.write_text("#!/bin/sh\necho 'No module named venv' >&2\nexit 1\n", encoding="utf-8")
    broken.chmod(0o755)
    done = make(scratch, "deps", f"BOOTSTRAP_PYTHON={broken}")
    assert done.returncode != 0
    assert "apt-get install python3-venv" in done.stderr


def test_python_given_skips_the_venv(scratch: Path, bootstrap: Path, tmp_path: Path) -> None:
    given = tmp_path / "given-python"
    given.write_text(_RECORDER.format(name="given", calls=tmp_path / "calls"), encoding="utf-8")
    given.chmod(0o755)
    done = make(scratch, "lint", f"PYTHON={given}", f"BOOTSTRAP_PYTHON={bootstrap}")
    assert done.returncode == 0, done.stderr
    assert calls(bootstrap) == ["given -m ruff check .", "given -m mypy"]
    assert not (scratch / ".venv").exists()
