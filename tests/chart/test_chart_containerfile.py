"""The Containerfile: hadolint clean, NGC base by default, deps before source, non-root, no vLLM/Triton added."""

from __future__ import annotations

import configparser
import re
import shutil
import subprocess

import chart_manifests as manifests
import pytest

ROOT = manifests.ROOT
CONTAINERFILE = ROOT / "Containerfile"


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs with line continuations joined and comments dropped."""
    out, buf = [], ""
    for line in text.splitlines():
        if not buf and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.rstrip().endswith("\\"):
            buf += line.rstrip()[:-1] + " "
            continue
        buf += line
        word, _, rest = buf.strip().partition(" ")
        out.append((word.upper(), rest.strip()))
        buf = ""
    return out


@pytest.fixture(scope="module")
def steps() -> list[tuple[str, str]]:
    return instructions(CONTAINERFILE.read_text())


def _hadolint() -> str:
    venv = ROOT / ".venv-chart" / "bin" / "hadolint"
    found = str(venv) if venv.exists() else shutil.which("hadolint")
    if not found:
        pytest.skip("hadolint missing: run make chart-test")
    return found


def test_hadolint_clean():
    proc = subprocess.run(
        [_hadolint(), "--failure-threshold", "style", str(CONTAINERFILE)], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_hadolint_would_catch_a_bad_line(tmp_path):
    bad = tmp_path / "Containerfile"
    bad.write_text(CONTAINERFILE.read_text().replace("USER 1000:1000", "USER root"))
    proc = subprocess.run([_hadolint(), str(bad)], capture_output=True, text=True)
    assert proc.returncode != 0 and "DL3002" in proc.stdout  # last USER should not be root


def test_base_image_arg_defaults_to_ngc_pytorch(steps):
    assert steps[0][0] == "ARG"
    name, _, default = steps[0][1].partition("=")
    assert name == "BASE_IMAGE"
    assert re.fullmatch(r"nvcr\.io/nvidia/pytorch:\d{2}\.\d{2}-py3", default), default
    assert int(default.split(":")[1][:2]) >= 25  # 25.x: CUDA 13 / sm_121 (GB10) and arm64
    assert steps[1] == ("FROM", "${BASE_IMAGE}")
    assert [s for s in steps if s[0] == "FROM"] == [steps[1]]


def test_dependencies_before_source_and_torch_kept(steps):
    kinds = [s[0] + " " + s[1] for s in steps]
    i_req = next(i for i, s in enumerate(kinds) if s.startswith("COPY requirements-serve.txt"))
    i_pip = next(i for i, s in enumerate(kinds) if "-r /app/requirements-serve.txt" in s)
    i_src = next(i for i, s in enumerate(kinds) if s.startswith("COPY predictor/"))
    assert i_req < i_pip < i_src
    pip_step = steps[i_pip][1]
    # installs are constrained to the base's torch/triton and checked unchanged afterwards
    assert "diff -u /tmp/before.txt /tmp/after.txt" in pip_step
    assert 'if [ -n "${TORCH_SPEC}" ]' in pip_step
    assert ("ARG", 'TORCH_SPEC=""') in steps  # no torch install on the default (NGC) path
    for _, args in steps:
        assert not re.search(r"pip install[^;&]*\b(vllm|triton|torch==)", args), args


def _pip_step(steps) -> str:
    return next(a for k, a in steps if k == "RUN" and "-r /app/requirements-serve.txt" in a)


def _commands(run: str) -> list[str]:
    """The `;`-separated shell commands of a RUN, keeping quoted text (python -c "...; ...") whole."""
    out, cur, quote = [], "", ""
    for ch in run:
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == ";":
            out.append(cur.strip())
            cur = ""
            continue
        cur += ch
    return [c for c in [*out, cur.strip()] if c]


def test_base_pip_constraint_is_lifted_for_our_install_only(steps):
    """NGC's global constraint (PIP_CONSTRAINT) pins e.g. protobuf below what kserve needs: our install replaces it
    with the base's torch pins, and nothing else changes PIP_CONSTRAINT for the image."""
    cmds = _commands(_pip_step(steps))
    (install,) = [c for c in cmds if "-r /app/requirements-serve.txt" in c]
    assert install.startswith("PIP_CONSTRAINT=/tmp/before.txt python -m pip install "), install
    assert " -c " not in install  # a -c would add to the base's constraint, not replace it
    i = cmds.index(install)
    assert cmds[i - 1] == "pinned > /tmp/before.txt" and cmds[i + 1] == "pinned > /tmp/after.txt"
    pinned = next(c for c in cmds if c.startswith("pinned()"))
    assert all(p in pinned for p in ("torch", "torchvision", "triton"))
    assert not any("PIP_CONSTRAINT" in a for k, a in steps if k in {"ENV", "ARG"})


def test_torch_cuda_and_arch_list_printed_and_must_not_change(steps):
    cmds = _commands(_pip_step(steps))
    probe = next(c for c in cmds if c.startswith("probe()"))
    assert "torch.__version__" in probe and "torch.version.cuda" in probe and "_cuda_getArchFlags" in probe
    order = [c for c in cmds if c.startswith(("probe |", "probe >", "diff -u /tmp/torch-before.txt", "PIP_CONSTRAINT"))]
    assert order == [
        "probe | tee /tmp/torch-before.txt",
        next(c for c in cmds if c.startswith("PIP_CONSTRAINT")),
        "probe > /tmp/torch-after.txt",
        "diff -u /tmp/torch-before.txt /tmp/torch-after.txt",
    ]
    floor = next(c for c in cmds if "MIN_TORCH" in c and "sys.exit" in c)
    assert "TorchVersion" in floor
    assert ("ARG", "MIN_TORCH=2.6") in steps


def test_runtime_user_env_and_entrypoint(steps):
    users = [a for k, a in steps if k == "USER"]
    assert users and re.fullmatch(r"[1-9]\d*(:\d+)?", users[-1]), users
    env = " ".join(a for k, a in steps if k == "ENV")
    assert "HF_HOME=/cache/huggingface" in env and "TORCH_HOME=/cache/torch" in env
    assert steps[-1] == ("ENTRYPOINT", '["python", "-m", "predictor"]')
    assert ("EXPOSE", "8080 8081") in steps
    run_all = " ".join(a for k, a in steps if k == "RUN")
    assert "chown -R 1000:1000 /home/predictor /cache" in run_all


def test_one_image_serves_the_ray_variant_too(steps):
    """KubeRay's readiness probe runs bash, wget and grep in the image; KubeRay starts it with the ray CLI."""
    reqs = (ROOT / "requirements-serve.txt").read_text()
    assert re.search(r"^ray\[serve\]==2\.60\.0$", reqs, re.M), reqs
    run_all = " ".join(a for k, a in steps if k == "RUN")
    assert "apt-get install -y --no-install-recommends wget" in run_all
    assert "command -v bash grep wget ray" in run_all
    # installed after the dependency layer, so `ray` exists when the check runs
    run_steps = [a for k, a in steps if k == "RUN"]
    dep = next(i for i, a in enumerate(run_steps) if "requirements-serve.txt" in a)
    probe = next(i for i, a in enumerate(run_steps) if "command -v bash grep wget ray" in a)
    assert dep < probe


def test_chart_runs_as_the_image_user():
    values = (manifests.CHART / "values.yaml").read_text()
    assert "runAsUser: 1000" in values and "runAsGroup: 1000" in values


def test_containerignore_keeps_context_minimal():
    lines = [
        x.strip() for x in (ROOT / ".containerignore").read_text().splitlines() if x.strip() and not x.startswith("#")
    ]
    assert lines[0] == "*"
    assert set(lines[1:]) >= {"!requirements-serve.txt", "!predictor/"}


def test_requirements_match_setup_cfg_minus_torch():
    reqs = {
        re.split(r"[<>=!~\[]", line, maxsplit=1)[0].strip().lower().replace("_", "-"): line.strip()
        for line in (ROOT / "requirements-serve.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert not {"torch", "vllm", "triton", "torchvision"} & set(reqs)
    assert reqs["kserve"] == "kserve==0.21.0"
    assert reqs["transformers"] == "transformers>=5.24,<6"
    setup = ROOT / "setup.cfg"
    if not setup.exists():
        pytest.skip("setup.cfg not present yet")
    cfg = configparser.ConfigParser()
    cfg.read(setup)
    wanted = {
        re.split(r"[<>=!~\[;]", line, maxsplit=1)[0].strip().lower().replace("_", "-"): line.strip()
        for line in cfg.get("options", "install_requires").splitlines()
        if line.strip()
    }
    wanted.pop("torch", None)
    assert set(wanted) <= set(reqs), f"add to requirements-serve.txt: {sorted(set(wanted) - set(reqs))}"
    for name, spec in wanted.items():
        assert reqs[name].replace(" ", "") == spec.replace(" ", ""), (name, reqs[name], spec)


def test_command_splitter_keeps_quoted_semicolons():
    assert _commands("set -eux; python -c \"import a; b()\"; echo 'x;y'") == [
        "set -eux", 'python -c "import a; b()"', "echo 'x;y'"]


def test_parser_joins_continuations():
    steps = instructions("ARG A=1\n# c\nRUN a \\\n    && b\nUSER 1000\n")
    assert steps == [("ARG", "A=1"), ("RUN", "a      && b"), ("USER", "1000")]


def test_image_test_doc_records_a_run():
    doc = ROOT / "docs" / "IMAGE-TEST.md"
    if not doc.exists():
        pytest.skip("docs/IMAGE-TEST.md not written yet")
    text = doc.read_text()
    assert re.search(r"\b20\d\d-\d\d-\d\d\b", text), "IMAGE-TEST.md must record the date of the run"
    assert "200" in text


def test_no_dockerfile_duplicate():
    assert not (ROOT / "Dockerfile").exists(), "keep one build file: Containerfile"
