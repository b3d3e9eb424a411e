"""Regenerates (or checks) everything derived from the code: contracts/ (OpenAPI, AsyncAPI), the generated
Kubernetes manifests and the Grafana dashboard.

    python tools/generate.py           # after changing routes, events, settings or the service list
    python tools/generate.py --check   # exit 1 when anything committed is stale (the tests do the same)
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import gen_dashboard  # noqa: E402
import gen_k8s  # noqa: E402
from spvhub_devtools import contracts  # noqa: E402


def main(argv: list[str]) -> int:
    if "--check" in argv:
        rc = contracts.main(["check"])
        rc |= gen_k8s.main(["--check"])
        rc |= gen_dashboard.main(["--check"])
        return rc
    return contracts.main(["generate"]) | gen_k8s.main([]) | gen_dashboard.main([])


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
