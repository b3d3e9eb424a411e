"""Renders the nginx gateway config (routes, rate limits, health view) and its static pages from the code.

`python -m spvhub_common.gateway_conf --template infra/nginx/nginx.conf.tmpl --out <dir>/nginx.conf --prefix <dir>`
writes nginx.conf plus <dir>/html/{openapi.json, health.json, docs/} (merged OpenAPI built from the service
apps, the SSI health page, a self-contained Swagger UI). The route table here is the one the Kubernetes
Ingress is checked against (tests/platform), so the gateway and the cluster cannot drift.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

SERVICES: tuple[str, ...] = ("auth", "portfolio", "invitations", "efactura", "etransport", "notifier")
REPO_ROOT = Path(__file__).resolve().parents[3]
STACK_ENV = REPO_ROOT / "infra" / "stack.env"


@dataclass(frozen=True)
class Route:
    """A path the gateway and the Ingress send to one service: a prefix in Kubernetes' element-wise sense
    (`/api/auth` matches `/api/auth` and `/api/auth/...`, never `/api/authx`), or an exact path."""

    path: str
    service: str
    exact: bool = False


@dataclass(frozen=True)
class RateLimit:
    """A public endpoint limited per client address: `rate` like `30r/m`, `burst` requests beyond it."""

    path: str
    service: str
    zone: str


# spvhub web (services/web): the screens people use, routed by the same gateway. Its paths are the person-facing
# URLs the platform writes in e-mails and notifications (`/join`, `/inbox`, `/companies/...`); nothing under /api.
WEB = "web"
WEB_DEFAULT_PORT = 18110
WEB_PATHS: tuple[str, ...] = ("/login", "/signup", "/logout", "/lang", "/companies", "/invoices", "/transports",
                              "/inbox", "/preferences", "/join", "/delegation", "/anaf", "/static")
WEB_EXACT: tuple[str, ...] = ("/", "/invoices-export.zip")
WEB_UPLOAD_REGEX = "^/companies/[^/]+/submissions$"   # the invoice upload form: XML up to 10 MB, multipart
WEB_UPLOAD_MAX = "11m"


def web_routes() -> list[Route]:
    """The web's routes (the same element-wise prefix sense as `routes()`)."""
    return [Route(p, WEB, exact=True) for p in WEB_EXACT] + [Route(p, WEB) for p in WEB_PATHS]


def routes() -> list[Route]:
    """Every public route: `/api/<service>/` for each service, and the JWKS of auth."""
    return [Route(f"/api/{s}", s) for s in SERVICES] + [Route("/.well-known/jwks.json", "auth", exact=True)]


RATE_LIMITS: tuple[RateLimit, ...] = (
    RateLimit("/api/auth/login", "auth", "login"),
    RateLimit("/api/auth/signup", "auth", "signup"),
    RateLimit("/api/invitations/preview", "invitations", "public"),
    RateLimit("/api/invitations/claim", "invitations", "public"),
)
# zone -> (rate, burst). Dev defaults stay generous enough for test suites that log in often; override
# per zone with SPVHUB_GATEWAY_RATE_<ZONE> (e.g. 5r/m) and SPVHUB_GATEWAY_BURST_<ZONE>.
RATE_ZONES: dict[str, tuple[str, int]] = {"login": ("30r/m", 30), "signup": ("10r/m", 10), "public": ("60r/m", 30)}


def route_matches(route: Route, path: str) -> bool:
    return path == route.path or (not route.exact and path.startswith(route.path + "/"))


def read_env_file(path: Path = STACK_ENV) -> dict[str, str]:
    out: dict[str, str] = {}
    if not path.exists():
        return out
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        k, v = line.split("=", 1)
        out[k.strip()] = v.strip().strip('"').strip("'")
    return out


def stack_values(env_file: Path = STACK_ENV) -> dict[str, str]:
    """infra/stack.env, overridden by the process environment (./dev exports the same file)."""
    values = read_env_file(env_file)
    values.update({k: v for k, v in os.environ.items() if k.startswith("SPVHUB_")})
    return values


def service_port(name: str, values: dict[str, str]) -> int:
    if name == WEB:
        return int(values.get("SPVHUB_WEB_PORT", WEB_DEFAULT_PORT))
    return int(values[f"SPVHUB_{name.upper()}_PORT"])


def _upstreams(values: dict[str, str], upstream_host: str, upstream_port: int | None) -> str:
    blocks = []
    for s in [*SERVICES, WEB]:
        host = upstream_host.format(name=s)
        port = upstream_port or service_port(s, values)
        blocks.append(f"    upstream {s} {{\n        server {host}:{port} max_fails=0;\n        keepalive 16;\n    }}")
    return "\n".join(blocks)


def _rate_zones(values: dict[str, str]) -> str:
    lines = []
    for zone, (rate, _burst) in RATE_ZONES.items():
        rate = values.get(f"SPVHUB_GATEWAY_RATE_{zone.upper()}", rate)
        lines.append(f"    limit_req_zone $binary_remote_addr zone={zone}:10m rate={rate};")
    return "\n".join(lines)


def _rate_locations(values: dict[str, str]) -> str:
    out = []
    for rl in RATE_LIMITS:
        burst = int(values.get(f"SPVHUB_GATEWAY_BURST_{rl.zone.upper()}", RATE_ZONES[rl.zone][1]))
        out.append(f"        location ^~ {rl.path} {{\n"
                   f"            limit_req zone={rl.zone} burst={burst} nodelay;\n"
                   f"            proxy_pass http://{rl.service};\n        }}")
    return "\n".join(out)


def _web_locations() -> str:
    """The web's pages, and its invoice upload with a body limit of its own (the default is for JSON)."""
    out = [f'        location ~ "{WEB_UPLOAD_REGEX}" {{\n            client_max_body_size {WEB_UPLOAD_MAX};\n'
           f"            proxy_pass http://{WEB};\n        }}"]
    for r in web_routes():
        paths = [f"= {r.path}"] if r.exact else [f"= {r.path}", f"{r.path}/"]
        for p in paths:
            out.append(f"        location {p} {{\n            proxy_pass http://{WEB};\n        }}")
    return "\n".join(out)


def _route_locations() -> str:
    out = []
    for r in routes():
        paths = [f"= {r.path}"] if r.exact else [f"= {r.path}", f"{r.path}/"]
        for p in paths:
            out.append(f"        location {p} {{\n            proxy_pass http://{r.service};\n        }}")
    return "\n".join(out)


def _health_locations() -> str:
    out = []
    for s in SERVICES:
        down = json.dumps({"status": "unavailable", "service": s,
                           "failures": {"gateway": "no answer from /health/ready"}})
        out.append(f"        location = /_health/{s} {{\n            internal;\n"
                   f"            proxy_connect_timeout 2s;\n            proxy_read_timeout 3s;\n"
                   f"            error_page 502 504 = /_health_down/{s};\n"
                   f"            proxy_pass http://{s}/health/ready;\n        }}\n"
                   f"        location = /_health_down/{s} {{\n            internal;\n"
                   f"            default_type application/json;\n            return 200 '{down}';\n        }}")
    return "\n".join(out)


def health_page() -> str:
    """The SSI page behind `/health`: each service's /health/ready answer (or `unavailable` when it is silent)
    and an overall status. A `set=` include keeps only 2xx bodies, so it tells ready from not ready; the plain
    include then copies whatever the service answered (with its failures) into the view."""
    parts = [f'<!--# include virtual="/_health/{s}" set="ok_{s}" -->' for s in SERVICES]
    parts.append('<!--# set var="overall" value="ok" -->')
    for s in SERVICES:
        parts.append(f'<!--# if expr="$ok_{s} != /.status.:.ok./" -->'
                     '<!--# set var="overall" value="degraded" --><!--# endif -->')
    body = ['{"status":"<!--# echo var="overall" -->","service":"gateway","services":{']
    for i, s in enumerate(SERVICES):
        sep = "," if i < len(SERVICES) - 1 else ""
        body.append(f'"{s}":<!--# include virtual="/_health/{s}" -->{sep}')
    body.append("}}")
    return "".join(parts) + "\n".join(body) + "\n"


DOCS_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>spvhub API</title>
<link rel="stylesheet" href="swagger-ui.css"><link rel="icon" type="image/png" href="favicon-32x32.png">
<style>body{margin:0}</style></head>
<body><div id="swagger-ui"></div>
<script src="swagger-ui-bundle.js"></script><script src="swagger-ui-standalone-preset.js"></script>
<script>
window.ui = SwaggerUIBundle({url: "/openapi.json", dom_id: "#swagger-ui", deepLinking: true,
  presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset], layout: "StandaloneLayout",
  persistAuthorization: true});
</script></body></html>
"""
SWAGGER_ASSETS = ("swagger-ui.css", "swagger-ui-bundle.js", "swagger-ui-standalone-preset.js",
                  "favicon-16x16.png", "favicon-32x32.png", "oauth2-redirect.html", "LICENSE")


def write_docs(html: Path) -> None:
    """A self-contained Swagger UI (assets from the swagger-ui-py package; no CDN)."""
    import swagger_ui  # swagger-ui-py ships Swagger UI 5.x, which renders OpenAPI 3.1

    static = Path(swagger_ui.__file__).parent / "static"
    docs = html / "docs"
    docs.mkdir(parents=True, exist_ok=True)
    for name in SWAGGER_ASSETS:
        shutil.copyfile(static / name, docs / name)
    (docs / "index.html").write_text(DOCS_PAGE)


def write_openapi(html: Path, *, from_code: bool = True, contracts_dir: Path | None = None) -> str:
    """Merged OpenAPI from the service apps; falls back to the committed contracts/openapi.json."""
    from spvhub_common import contracts

    committed = (contracts_dir or contracts.CONTRACTS) / "openapi.json"
    if from_code:
        try:
            doc = contracts.build_openapi()
            (html / "openapi.json").write_text(contracts.dump_json(doc))
            return "built from the service apps"
        except Exception as exc:  # a half-built service must not keep the gateway down
            print(f"gateway_conf: building OpenAPI from code failed ({type(exc).__name__}: {exc}); "
                  "serving contracts/openapi.json", file=sys.stderr)
    shutil.copyfile(committed, html / "openapi.json")
    return f"copied from {committed}"


def render(template: str, *, values: dict[str, str], listen: str, upstream_host: str = "127.0.0.1",
           upstream_port: int | None = None, user: str | None = None) -> str:
    user_line = f"user {user};" if user else "# (no user directive: workers keep the master's user)"
    repl = {
        "@@USER@@": user_line,
        "@@LISTEN@@": listen,
        "@@UPSTREAMS@@": _upstreams(values, upstream_host, upstream_port),
        "@@RATE_ZONES@@": _rate_zones(values),
        "@@RATE_LOCATIONS@@": _rate_locations(values),
        "@@ROUTE_LOCATIONS@@": _route_locations(),
        "@@WEB_LOCATIONS@@": _web_locations(),
        "@@HEALTH_LOCATIONS@@": _health_locations(),
    }
    out = template
    for k, v in repl.items():
        out = out.replace(k, v)
    if "@@" in out:
        raise ValueError("unfilled placeholder in the gateway template: " + out[out.index("@@"):][:40])
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--template", type=Path, default=REPO_ROOT / "infra" / "nginx" / "nginx.conf.tmpl")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--prefix", type=Path, required=True, help="the nginx prefix (-p): html/ and tmp/ go here")
    p.add_argument("--env-file", type=Path, default=STACK_ENV)
    p.add_argument("--listen", help="listen address (default 127.0.0.1:$SPVHUB_GATEWAY_PORT)")
    p.add_argument("--upstream-host", default="127.0.0.1",
                   help="host of each service; {name} is replaced by the service name (compose: '{name}')")
    p.add_argument("--upstream-port", type=int, help="one port for every service (default: its stack.env port)")
    p.add_argument("--user", help="nginx `user` directive; default: root when run as root (dev), none otherwise")
    p.add_argument("--openapi-from", choices=["code", "contracts"], default="code")
    p.add_argument("--contracts-dir", type=Path, help="where the committed openapi.json is (default: contracts/)")
    a = p.parse_args(argv)

    values = stack_values(a.env_file)
    listen = a.listen or f"127.0.0.1:{values['SPVHUB_GATEWAY_PORT']}"
    # As root (./dev on a dev box) workers would drop to `nobody`, who may not read a checkout under a
    # private home; in the container image the master itself is unprivileged and no user line is written.
    user = a.user if a.user is not None else ("root" if os.geteuid() == 0 else None)
    if user == "none":
        user = None
    conf = render(a.template.read_text(), values=values, listen=listen, upstream_host=a.upstream_host,
                  upstream_port=a.upstream_port, user=user)
    prefix = a.prefix.resolve()
    html = prefix / "html"
    html.mkdir(parents=True, exist_ok=True)
    (prefix / "tmp").mkdir(exist_ok=True)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(conf)
    (html / "health.json").write_text(health_page())
    write_docs(html)
    how = write_openapi(html, from_code=a.openapi_from == "code", contracts_dir=a.contracts_dir)
    print(f"gateway_conf: wrote {a.out} (listen {listen}); OpenAPI {how}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
