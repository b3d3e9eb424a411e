"""Command line entry point: `python -m anaf_emulator --scenario <file> [--host] [--port] [--admin]`."""

from __future__ import annotations

import argparse
import json
from typing import Any

import uvicorn

from .app import create_app
from .hosts import FamilyHosts


def _switch(text: str) -> tuple[str, object]:
    name, _, raw = text.partition("=")
    try:
        value: object = json.loads(raw)
    except ValueError:
        value = raw
    return name.strip(), value


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="anaf_emulator", description="Offline ANAF emulator")
    parser.add_argument("--scenario", default="demo.json", help="scenario file (JSON/TOML) or shipped name")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=18080)
    parser.add_argument("--admin", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--switch", action="append", default=[], type=_switch, metavar="NAME=VALUE")
    parser.add_argument("--clock-start", default=None, help='ISO instant or "now": overrides the scenario clock')
    parser.add_argument("--log-level", default="warning")
    parser.add_argument("--family-hosts", action="store_true",
                        help="serve each ANAF host family only under its own path prefix (hosts.py)")
    args = parser.parse_args(argv)
    app: Any = create_app(args.scenario, admin=args.admin, clock_start=args.clock_start, **dict(args.switch))
    if args.family_hosts:
        app = FamilyHosts(app)
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        access_log=False,
        http="httptools",
        loop="uvloop",
    )


if __name__ == "__main__":
    main()
