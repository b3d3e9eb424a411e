"""`python -m spvhub_web` serves the screens (HTTP only: no database, no consumers, no migrations)."""
from __future__ import annotations

import sys

from spvhub_web.settings import get_settings


def main(argv: list[str]) -> None:
    if argv[:1] == ["migrate"]:
        print("spvhub_web: no database, nothing to migrate")
        return
    if argv:
        raise SystemExit(f"unknown command {argv[0]!r}; known: migrate")
    import uvicorn

    from spvhub_web.bootstrap import build_app
    s = get_settings()
    uvicorn.run(build_app(s), host=s.http_host, port=s.http_port, log_level=s.log_level.lower(),
                access_log=False, timeout_graceful_shutdown=5)


if __name__ == "__main__":
    main(sys.argv[1:])
