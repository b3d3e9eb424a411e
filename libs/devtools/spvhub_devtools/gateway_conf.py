"""Renders the nginx gateway config (routes, rate limits, health view) and its static pages from the code.

`python -m spvhub_devtools.gateway_conf --template infra/nginx/nginx.conf.tmpl --out <dir>/nginx.conf --prefix <dir>`
writes nginx.conf plus <dir>/html/{openapi.json, health.json, docs/} (merged OpenAPI built from the service
apps, the SSI health page, a self-contained Swagger UI). The route table here is the one the Kubernetes
Ingress is checked against (tests/platform), so the gateway and the cluster cannot drift.
"""
from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import re
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

# The body-size table is runtime data (every service enforces it); the gateway renders the same table.
from spvhub_common.body_limits import BODY_LIMITS as BODY_LIMITS
from spvhub_common.body_limits import DEFAULT_BODY_LIMIT as DEFAULT_BODY_LIMIT
from spvhub_common.body_limits import MIB as MIB
from spvhub_common.body_limits import BodyLimit as BodyLimit
from spvhub_common.body_limits import body_limits_of as body_limits_of

SERVICES: tuple[str, ...] = ("auth", "portfolio", "invitations", "efactura", "etransport", "notifier", "webhooks")
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
                              "/inbox", "/preferences", "/join", "/delegation", "/anaf", "/static", "/account",
                              "/verify-email", "/forgot-password", "/reset-password")
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


# Query parameters whose value is never written to the access log: OAuth `code`/`state`, invitation and delegation
# tokens, and anything else that looks like a credential (matched anywhere in the parameter name).
SENSITIVE_QUERY_NAMES = ("token", "code", "state", "secret", "password", "passwd", "key", "sig", "session",
                         "auth", "credential", "ticket", "jwt", "nonce", "otp")
REDACTED = "[REDACTED]"
REDACTION_PASSES = 6   # sensitive parameters redacted one by one; a query with more is logged as REDACTED whole

# Security headers. HSTS only where TLS terminates (scheme or X-Forwarded-Proto https; browsers ignore it on http).
DEFAULT_HSTS_MAX_AGE = 31536000
API_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
CORS_METHODS = "GET, POST, PUT, PATCH, DELETE, OPTIONS"
CORS_HEADERS = "Authorization, Content-Type, Idempotency-Key, X-Request-ID, traceparent, tracestate"
CORS_EXPOSE = "X-Request-ID, Retry-After, Location, Content-Disposition"


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


def _upstreams(values: dict[str, str], upstream_host: str, upstream_port: int | None, web: bool = True) -> str:
    blocks = []
    for s in [*SERVICES, *([WEB] if web else [])]:
        host = upstream_host.format(name=s)
        port = upstream_port or service_port(s, values)
        blocks.append(f"    upstream {s} {{\n        server {host}:{port} max_fails=0;\n        keepalive 16;\n    }}")
    return "\n".join(blocks)


def gateway_trusted_proxies(values: dict[str, str]) -> list[str]:
    """SPVHUB_GATEWAY_TRUSTED_PROXIES: comma-separated CIDRs of the peers whose X-Forwarded-For names the client
    (spvhub web, which calls the gateway for the person; an ingress in front). Empty = the peer is the client."""
    import ipaddress

    out = []
    for raw in values.get("SPVHUB_GATEWAY_TRUSTED_PROXIES", "").split(","):
        if raw.strip():
            try:
                out.append(str(ipaddress.ip_network(raw.strip(), strict=False)))
            except ValueError as exc:
                raise ValueError(f"SPVHUB_GATEWAY_TRUSTED_PROXIES: {raw.strip()!r} is not an address or CIDR") from exc
    return out


def _real_ip(values: dict[str, str]) -> str:
    """nginx realip: from a trusted peer, $remote_addr (the rate-limit key, the access log, X-Real-IP and the address
    appended to X-Forwarded-For) becomes the client it names, read right to left past trusted hops; from any other
    peer a client-written X-Forwarded-For changes nothing."""
    nets = gateway_trusted_proxies(values)
    if not nets:
        return "    # no trusted proxies (SPVHUB_GATEWAY_TRUSTED_PROXIES): the direct peer is always the client"
    lines = [f"    set_real_ip_from {n};" for n in nets]
    lines += ["    real_ip_header X-Forwarded-For;", "    real_ip_recursive on;"]
    return "\n".join(lines)


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


def _size(n: int) -> str:
    return f"{n // 1024}k"


def _body_limit_locations() -> str:
    out = []
    for b in BODY_LIMITS:
        out.append(f'        location ~ "{b.regex}" {{\n'
                   f"            client_max_body_size {_size(b.max_bytes)};\n"
                   f"            proxy_pass http://{b.service};\n        }}")
    return "\n".join(out)


def _redaction_maps() -> str:
    """Chained `map`s over $args: each pass replaces the value of one more sensitive parameter (the last one not yet
    redacted); the final map drops the whole query if anything sensitive is left, or if a parameter name is
    percent-encoded (a service would decode `%63ode` to `code`)."""
    names = "|".join(SENSITIVE_QUERY_NAMES)
    param = rf"[^&=]*(?:{names})[^&=]*"
    one = rf"~*^(?<spv_qa>(?:.*&)?)(?<spv_qn>{param})=(?!\[REDACTED\])[^&]*(?<spv_qb>.*)$"
    lines = []
    prev = "$args"
    for i in range(1, REDACTION_PASSES + 1):
        var = f"$spv_q{i}"
        lines.append(f'    map {prev} {var} {{\n        "{one}" "${{spv_qa}}${{spv_qn}}={REDACTED}${{spv_qb}}";\n'
                     f"        default {prev};\n    }}")
        prev = var
    left = rf"~*(?:^|&){param}=(?!\[REDACTED\])"
    lines.append(f'    map {prev} $spv_log_query {{\n        "{left}" "{REDACTED}";\n'
                 f'        "~(?:^|&)[^&=]*%" "{REDACTED}";\n        default {prev};\n    }}')
    return "\n".join(lines)


def docs_script_hash() -> str:
    """CSP hash of the docs page's one inline script (Swagger UI's bootstrap), so /docs needs no 'unsafe-inline'."""
    script = DOCS_PAGE.split("<script>", 1)[1].split("</script>", 1)[0]
    return "sha256-" + base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()


def docs_csp() -> str:
    return (f"default-src 'none'; script-src 'self' '{docs_script_hash()}'; style-src 'self' 'unsafe-inline'; "
            "img-src 'self' data:; font-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; "
            "base-uri 'none'; form-action 'none'")


def cors_origins(values: dict[str, str]) -> list[str]:
    """SPVHUB_CORS_ALLOWED_ORIGINS: comma-separated origins (`https://app.example.ro`); empty = same origin only."""
    out = []
    for raw in values.get("SPVHUB_CORS_ALLOWED_ORIGINS", "").split(","):
        origin = raw.strip().rstrip("/")
        if not origin:
            continue
        parts = urlsplit(origin)
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.path or parts.query or "*" in origin:
            raise ValueError(f"SPVHUB_CORS_ALLOWED_ORIGINS: {raw.strip()!r} is not an origin like https://host[:port]")
        out.append(f"{parts.scheme}://{parts.netloc}".lower())
    return out


def public_host(values: dict[str, str]) -> str:
    """The Host services see and the gateway's server_name: from SPVHUB_PUBLIC_BASE_URL, never the client's Host."""
    base = values.get("SPVHUB_PUBLIC_BASE_URL") or f"http://127.0.0.1:{values.get('SPVHUB_GATEWAY_PORT', '18000')}"
    netloc = urlsplit(base).netloc
    if not netloc or not re.fullmatch(r"[A-Za-z0-9.\-\[\]:]+", netloc):
        raise ValueError(f"SPVHUB_PUBLIC_BASE_URL: {base!r} has no usable host")
    return netloc


def _header_maps(values: dict[str, str]) -> str:
    hsts_age = int(values.get("SPVHUB_GATEWAY_HSTS_MAX_AGE", DEFAULT_HSTS_MAX_AGE))
    hsts = f'"max-age={hsts_age}; includeSubDomains"' if hsts_age > 0 else '""'
    origins = "".join(f'        "{o}" $http_origin;\n' for o in cors_origins(values))
    return (
        '    map "$scheme:$http_x_forwarded_proto" $spv_hsts {\n'
        f'        "~^https:" {hsts};\n        "~:https$" {hsts};\n        default "";\n    }}\n'
        "    # A CSP set by the service (an HTML page of its own) is kept; the docs page gets the one Swagger UI\n"
        "    # needs; everything else the strict API one.\n"
        "    # A PDF shown inline gets none: a browser's PDF viewer may not render under default-src 'none'.\n"
        '    map "$upstream_http_content_security_policy|$upstream_http_content_type|$uri" $spv_csp {\n'
        f'        "~^\\|[^|]*\\|/docs/" "{docs_csp()}";\n'
        '        "~*^\\|application/pdf" "";\n'
        f'        "~^\\|" "{API_CSP}";\n        default "";\n    }}\n'
        "    # Responses carry private data or tokens: not stored anywhere unless the service says otherwise\n"
        "    # (the JWKS is public); the docs assets may be cached and revalidated.\n"
        '    map "$upstream_http_cache_control|$uri" $spv_cache_control {\n'
        '        "~^\\|/docs/" "no-cache";\n        "~^\\|" "no-store";\n        default "";\n    }\n'
        "    # CORS: only the configured origins are answered (exact match); nothing else is reflected.\n"
        "    map $http_origin $spv_cors_origin {\n"
        f'        default "";\n{origins}    }}\n'
        '    map "$request_method|$spv_cors_origin|$http_access_control_request_method" $spv_cors_preflight {\n'
        '        "~^OPTIONS\\|[^|]+\\|.+$" 1;\n        default 0;\n    }\n'
        "    map $spv_cors_preflight $spv_cors_methods {\n"
        f'        1 "{CORS_METHODS}";\n        default "";\n    }}\n'
        "    map $spv_cors_preflight $spv_cors_headers {\n"
        f'        1 "{CORS_HEADERS}";\n        default "";\n    }}\n'
        "    map $spv_cors_preflight $spv_cors_max_age {\n"
        '        1 "600";\n        default "";\n    }\n'
        "    map $spv_cors_origin $spv_cors_expose {\n"
        f'        "" "";\n        default "{CORS_EXPOSE}";\n    }}\n'
        "    map $spv_cors_origin $spv_cors_vary {\n"
        '        "" "";\n        default "Origin";\n    }'
    )


def _web_locations() -> str:
    """The web's pages, and its invoice upload with a body limit of its own (the default is for JSON)."""
    upload = (f'        location ~ "{WEB_UPLOAD_REGEX}" {{\n            client_max_body_size {WEB_UPLOAD_MAX};\n'
              f"            proxy_pass http://{WEB};\n        }}")
    return "\n".join([upload, *_proxy_locations(web_routes())])


def _route_locations() -> str:
    return "\n".join(_proxy_locations(routes()))


def _proxy_locations(table: list[Route]) -> list[str]:
    """One nginx location per route (a prefix route also gets its `/...` subtree), proxied to its service."""
    out = []
    for r in table:
        for p in ([f"= {r.path}"] if r.exact else [f"= {r.path}", f"{r.path}/"]):
            out.append(f"        location {p} {{\n            proxy_pass http://{r.service};\n        }}")
    return out


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
    from spvhub_devtools import contracts

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


# Without spvhub web (a deployment that has no `web` to resolve): `/` goes to the API docs, as before the web.
NO_WEB_LOCATIONS = "        location = / { return 302 /docs/; }"


def render(template: str, *, values: dict[str, str], listen: str, upstream_host: str = "127.0.0.1",
           upstream_port: int | None = None, user: str | None = None, web: bool = True) -> str:
    user_line = f"user {user};" if user else "# (no user directive: workers keep the master's user)"
    repl = {
        "@@USER@@": user_line,
        "@@LISTEN@@": listen,
        "@@UPSTREAMS@@": _upstreams(values, upstream_host, upstream_port, web),
        "@@REAL_IP@@": _real_ip(values),
        "@@RATE_ZONES@@": _rate_zones(values),
        "@@RATE_LOCATIONS@@": _rate_locations(values),
        "@@ROUTE_LOCATIONS@@": _route_locations(),
        "@@WEB_LOCATIONS@@": _web_locations() if web else NO_WEB_LOCATIONS,
        "@@HEALTH_LOCATIONS@@": _health_locations(),
        "@@BODY_LIMIT_LOCATIONS@@": _body_limit_locations(),
        "@@DEFAULT_BODY_LIMIT@@": _size(DEFAULT_BODY_LIMIT),
        "@@REDACTION_MAPS@@": _redaction_maps(),
        "@@HEADER_MAPS@@": _header_maps(values),
        "@@PUBLIC_HOST@@": public_host(values),
        "@@SERVER_NAME@@": urlsplit("//" + public_host(values)).hostname or "_",
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
    p.add_argument("--no-web", action="store_true", help="no spvhub web upstream (where it is not deployed)")
    a = p.parse_args(argv)

    values = stack_values(a.env_file)
    listen = a.listen or f"127.0.0.1:{values['SPVHUB_GATEWAY_PORT']}"
    # As root (./dev on a dev box) workers would drop to `nobody`, who may not read a checkout under a
    # private home; in the container image the master itself is unprivileged and no user line is written.
    user = a.user if a.user is not None else ("root" if os.geteuid() == 0 else None)
    if user == "none":
        user = None
    conf = render(a.template.read_text(), values=values, listen=listen, upstream_host=a.upstream_host,
                  upstream_port=a.upstream_port, user=user, web=not a.no_web)
    prefix = a.prefix.resolve()
    html = prefix / "html"
    html.mkdir(parents=True, exist_ok=True)
    (prefix / "tmp").mkdir(exist_ok=True)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(conf)
    # Snippets the config includes (relative includes resolve next to nginx.conf).
    for snippet in sorted(a.template.parent.glob("*.conf")):
        shutil.copyfile(snippet, a.out.parent / snippet.name)
    for name in re.findall(r"^\s*include\s+([^\s;/][^\s;]*);", conf, re.M):
        if not (a.out.parent / name).exists():
            raise SystemExit(f"gateway_conf: nginx.conf includes {name}, which is not next to the template")
    (html / "health.json").write_text(health_page())
    write_docs(html)
    how = write_openapi(html, from_code=a.openapi_from == "code", contracts_dir=a.contracts_dir)
    print(f"gateway_conf: wrote {a.out} (listen {listen}); OpenAPI {how}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
