"""The Containerfile's dependency step, run for real against an NGC-like global pip constraint.

NGC PyTorch images export PIP_CONSTRAINT=/etc/pip/constraint.txt pinning every package they ship; kserve 0.21 needs
a newer protobuf than such pins. The step must resolve anyway (it lifts the base's constraint for its install),
keep torch, and stop on a torch below MIN_TORCH. It runs in a venv layered on the python that has the predictor's
dependencies, with pip's --dry-run and no index: nothing is installed or downloaded.

That python is often a virtualenv itself (``python3 -m venv .venv``, then ``make test``). ``--system-site-packages``
then reaches only the base interpreter's packages, not the virtualenv's (where kserve and torch are), so the layer
also gets the virtualenv's site-packages, with their ``.pth`` files: it sees what the image's venv sees of its base.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import chart_manifests as manifests
import pytest

ROOT = manifests.ROOT
# what an NGC base pins below kserve 0.21's needs (protobuf>=6.33.5, psutil<6)
NGC_LIKE_PINS = "protobuf==4.25.3\npsutil==7.0.0\n"


def _dependency_step() -> str:
    """The RUN that installs requirements-serve.txt, with line continuations joined as the builder joins them."""
    text = (ROOT / "Containerfile").read_text().replace("\\\n", "")
    (run,) = [ln for ln in text.splitlines() if ln.startswith("RUN ") and "-r /app/requirements-serve.txt" in ln]
    return run[4:].replace("/app/requirements-serve.txt", str(ROOT / "requirements-serve.txt"))


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    python = os.environ.get("PREDICTOR_PYTHON", sys.executable)
    probe = subprocess.run([python, "-c", "import kserve, torch, transformers"], capture_output=True)
    if probe.returncode != 0:
        msg = f"{python} lacks the predictor's dependencies (set PREDICTOR_PYTHON)"
        if os.environ.get("CHART_TEST_REQUIRED") == "1":
            pytest.fail(msg)
        pytest.skip(msg)
    d = tmp_path_factory.mktemp("ngc-like")
    _layered_venv(python, d / "venv")
    (d / "constraint.txt").write_text(NGC_LIKE_PINS)
    env = {**os.environ, "PATH": f"{d / 'venv' / 'bin'}:{os.environ['PATH']}", "PIP_NO_INDEX": "1",
           "PIP_CONSTRAINT": str(d / "constraint.txt"), "PIP_FIND_LINKS": "", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    return d, env


def _layered_venv(python: str, venv: Path) -> None:
    """A venv whose packages are ``python``'s, as the image's venv layers on its base image's python."""
    # --without-pip: pip and setuptools come from the base python too, as they would in the image
    subprocess.run([python, "-m", "venv", "--system-site-packages", "--without-pip", str(venv)], check=True)
    own = json.loads(subprocess.run(
        [python, "-c", "import json, site, sys; print(json.dumps(site.getsitepackages() if sys.prefix != "
                       "sys.base_prefix else []))"], capture_output=True, text=True, check=True).stdout)
    if own:  # python is a virtualenv: layer on its site-packages too, ahead of the base interpreter's
        purelib = subprocess.run([str(venv / "bin" / "python"), "-c", "import sysconfig; "
                                  "print(sysconfig.get_paths()['purelib'])"], capture_output=True, text=True,
                                 check=True).stdout.strip()
        # an "import" line of a .pth file runs: addsitedir also reads the virtualenv's own .pth files (editables)
        Path(purelib, "_layered_on.pth").write_text(f"import site; list(map(site.addsitedir, {own!r}))\n")
    probe = subprocess.run([str(venv / "bin" / "python"), "-c", "import kserve, torch"], capture_output=True,
                           text=True)
    assert probe.returncode == 0, f"the layered venv does not see {python}'s packages: {probe.stderr[-1000:]}"


def _run(cmd: list[str], env: dict, cwd) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=cwd, timeout=600)


def test_a_plain_install_fails_under_the_ngc_like_constraint(base):
    d, env = base
    proc = _run(["python", "-m", "pip", "install", "--dry-run", "-r", str(ROOT / "requirements-serve.txt")], env, d)
    assert proc.returncode != 0 and "ResolutionImpossible" in proc.stdout + proc.stderr, proc.stdout + proc.stderr


def test_the_dependency_step_lifts_it_and_keeps_torch(base):
    d, env = base
    step_env = {**env, "TORCH_SPEC": "", "PIP_EXTRA_ARGS": "--dry-run", "MIN_TORCH": "2.6"}
    proc = _run(["bash", "-o", "pipefail", "-c", _dependency_step()], step_env, d)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    assert f"base pip constraint: {d / 'constraint.txt'} (lifted for this install)" in out
    assert "torch 2." in out and " cuda " in out and " archs " in out  # printed at build time


def test_the_dependency_step_refuses_a_torch_below_the_floor(base):
    d, env = base
    step_env = {**env, "TORCH_SPEC": "", "PIP_EXTRA_ARGS": "--dry-run", "MIN_TORCH": "99"}
    proc = _run(["bash", "-o", "pipefail", "-c", _dependency_step()], step_env, d)
    assert proc.returncode != 0 and "< MIN_TORCH 99" in proc.stdout + proc.stderr
