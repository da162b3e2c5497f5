"""`clawgate compose-config` and `clawgate k8s-manifests`: print the deployment files."""

from __future__ import annotations

import argparse
import sys

from clawgate.deploy import compose, k8s


def run(args: argparse.Namespace) -> int:
    if args.command == "compose-config":
        sys.stdout.write(compose.render(ci=args.ci))
    else:
        sys.stdout.write(k8s.render())
    return 0
