"""Regenerate the protos into a temporary folder and compare with the committed output.

Exit status 1 (with the differing files) when `make proto` was not run after a change.
"""

from __future__ import annotations

import filecmp
import os
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

from clawgate.common.services import SERVICES

ROOT = Path(__file__).resolve().parents[2]
GENERATED = tuple(d for s in SERVICES for d in s.generated_dirs)
DESCRIPTOR = "deploy/envoy/clawgate.pb"


def generate(out: Path) -> None:
    protos = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "proto").rglob("*.proto"))
    bin_dir = str(Path(sys.executable).parent)
    subprocess.run(
        [
            sys.executable, "-m", "grpc_tools.protoc", "-I", "proto",
            "-I", sysconfig.get_paths()["purelib"],
            f"--python_out={out}", f"--grpc_python_out={out}",
            f"--mypy_out={out}", f"--mypy_grpc_out={out}",
            f"--descriptor_set_out={out / 'clawgate.pb'}",
            "--include_imports", "--include_source_info", *protos,
        ],
        cwd=ROOT,
        check=True,
        env={**os.environ, "PATH": bin_dir + os.pathsep + os.environ.get("PATH", "")},
        capture_output=True,
    )  # fmt: skip


def differences(out: Path) -> list[str]:
    problems: list[str] = []
    for folder in GENERATED:
        fresh = {p.name for p in (out / folder).iterdir()}
        committed = {p.name for p in (ROOT / folder).iterdir() if p.name != "__init__.py"}
        committed.discard("__pycache__")
        for name in sorted(fresh ^ committed):
            problems.append(f"{folder}/{name}: present on one side only")
        for name in sorted(fresh & committed):
            if not filecmp.cmp(out / folder / name, ROOT / folder / name, shallow=False):
                problems.append(f"{folder}/{name}: differs")
    if not filecmp.cmp(out / "clawgate.pb", ROOT / DESCRIPTOR, shallow=False):
        problems.append(f"{DESCRIPTOR}: differs")
    return problems


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        generate(Path(tmp))
        problems = differences(Path(tmp))
    if problems:
        print("generated code is out of date with proto/; run `make proto`:")
        print("\n".join(f"  {p}" for p in problems))
        return 1
    print("generated code matches proto/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
