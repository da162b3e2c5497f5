"""`python -m clawgate.openapi [--check]`: write (or check) deploy/envoy/openapi.json."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from clawgate.launcher.envoy_config import DESCRIPTOR, OPENAPI
from clawgate.openapi.descriptors import Descriptors
from clawgate.openapi.generator import generate


def render(descriptor: Path = DESCRIPTOR) -> str:
    return json.dumps(generate(Descriptors.load(descriptor)), indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m clawgate.openapi", description=__doc__)
    parser.add_argument("--descriptor", type=Path, default=DESCRIPTOR)
    parser.add_argument("--out", type=Path, default=OPENAPI)
    parser.add_argument("--check", action="store_true", help="fail if --out is stale")
    args = parser.parse_args(argv)
    text = render(args.descriptor)
    if args.check:
        if not args.out.is_file() or args.out.read_text(encoding="utf-8") != text:
            print(f"{args.out} is stale: run `make proto` (or python -m clawgate.openapi)",
                  file=sys.stderr)  # fmt: skip
            return 1
        return 0
    args.out.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
