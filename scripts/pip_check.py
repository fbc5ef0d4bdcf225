"""`pip check` limited to this project's dependency tree.

A machine's Python may carry unrelated packages whose pins are already broken (seen on CI images: a preinstalled
aws-sam-translator pinning an older pydantic). Those are not ours to fix, but a conflict inside our own tree (the
protobuf trap when ray[serve] is resolved apart from kserve) must fail the build. So: run `pip check`, keep the
complaints whose package is one we install (directly or transitively, with the given extras), print the rest.
"""

from __future__ import annotations

import re
import subprocess
import sys
from importlib import metadata

from packaging.requirements import Requirement

PROJECT = "deepseek-ocr-predictor"


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def closure(root: str, extras: set[str]) -> set[str]:
    """Names of every installed distribution our project pulls in with these extras."""
    seen: set[str] = set()
    todo: list[tuple[str, set[str]]] = [(root, extras)]
    while todo:
        name, want = todo.pop()
        key = _norm(name)
        if key in seen:
            continue
        seen.add(key)
        try:
            requires = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            continue
        for line in requires:
            req = Requirement(line)
            envs = [{"extra": e} for e in (want or {""})]
            if req.marker is None or any(req.marker.evaluate(env) for env in envs):
                todo.append((req.name, set(req.extras)))
    return seen


def main() -> int:
    extras = set(sys.argv[1].split(",")) if len(sys.argv) > 1 else set()
    ours = closure(PROJECT, extras)
    out = subprocess.run([sys.executable, "-m", "pip", "check"], capture_output=True, text=True)
    lines = [x for x in (out.stdout + out.stderr).splitlines() if x.strip() and x != "No broken requirements found."]
    bad = [x for x in lines if _norm(x.split()[0]) in ours]
    for line in lines:
        print(("CONFLICT (ours): " if line in bad else "ignored (not our tree): ") + line)
    print(f"pip check over {len(ours)} distributions of {PROJECT}[{','.join(sorted(extras))}]: "
          + ("broken" if bad else "consistent"))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
