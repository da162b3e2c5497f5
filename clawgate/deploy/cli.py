"""`clawgate compose-config` and `clawgate k8s-manifests`: print the deployment files."""

from __future__ import annotations

import argparse
import sys


def run(args: argparse.Namespace) -> int:
    if args.command == "compose-config":
        from clawgate.deploy import compose

        sys.stdout.write(compose.render(ci=args.ci))
        return 0
    from clawgate.deploy import k8s

    sys.stdout.write(k8s.render())
    return 0
