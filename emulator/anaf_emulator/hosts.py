"""ANAF's four host families on one emulator, each under its own path prefix, so that a client configured with the
wrong base for a family fails the way it would against ANAF (a 404 from a host that has no such path).

ANAF serves OAuth from logincert.anaf.ro, the authenticated e-Factura / e-Transport APIs from api.anaf.ro, the
public registries and validare/transformare from webservicesp.anaf.ro and the SPV mailbox from webserviced.anaf.ro
(anaf-api.md §0). The emulator app serves all of them on one base URL; `FamilyHosts(app)` serves

    {base}/logincert.anaf.ro/anaf-oauth2/v1/...        OAuth only
    {base}/api.anaf.ro/{prod|test}/FCTEL/rest/...      e-Factura / e-Transport (Bearer) only
    {base}/webservicesp.anaf.ro/api/PlatitorTvaRest/... registries, validare/transformare only
    {base}/webserviced.anaf.ro/SPVWS2/rest/...         SPV mailbox only

and, without a prefix, only the emulator's own admin and key endpoints. `family_bases(base)` gives the four base
URLs to configure a client with (the `SPVHUB_ANAF_{OAUTH,API,PUBLIC,SPV}_BASE` settings).
"""

from __future__ import annotations

import json
import re
from typing import Any

PREFIXES = {
    "oauth": "/logincert.anaf.ro",
    "api": "/api.anaf.ro",
    "public": "/webservicesp.anaf.ro",
    "spv": "/webserviced.anaf.ro",
}

# The paths each real host has (anaf-api.md §0 table).
_PATHS = {
    "oauth": re.compile(r"^/anaf-oauth2/v1/"),
    "api": re.compile(r"^/(prod|test)/(FCTEL/rest|ETRANSPORT/ws/v1)/|^/api/validate/signature$|^/TestOauth/"),
    "public": re.compile(r"^/api/PlatitorTvaRest/|^/PlatitorTvaRest/|^/api/registruroefactura/"
                         r"|^/prod/FCTEL/rest/(validare|transformare)(/|$)|^/api/validate/signature$"),
    "spv": re.compile(r"^/SPVWS2/|^/my\.policy"),
}
_UNPREFIXED = re.compile(r"^/__admin(/|$)|^/__emulator/")


def family_bases(base_url: str) -> dict[str, str]:
    """The base URL of each host family on a `FamilyHosts` emulator at `base_url`."""
    base = base_url.rstrip("/")
    return {family: f"{base}{prefix}" for family, prefix in PREFIXES.items()}


def family_settings(base_url: str) -> dict[str, str]:
    """`family_bases` as service settings (`anaf_oauth_base`, `anaf_api_base`, ...), with no single emulator URL
    (which would point every family at one base)."""
    values = {f"anaf_{family}_base": url for family, url in family_bases(base_url).items()}
    values["anaf_emulator_url"] = ""
    return values


class FamilyHosts:
    """ASGI wrapper of the emulator app: each host family only under its prefix (module docstring). Attributes
    (`state`, `router`, ...) are the wrapped app's, so tests reach `app.state.emulator` as usual."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.refused: list[str] = []  # paths asked on the wrong host (or with no host): what a test may show

    def __getattr__(self, name: str) -> Any:
        return getattr(self.app, name)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        for family, prefix in PREFIXES.items():
            if path == prefix or path.startswith(prefix + "/"):
                rest = path[len(prefix):] or "/"
                if not _PATHS[family].search(rest):
                    break
                root = scope.get("root_path", "") + prefix
                inner = dict(scope, path=rest, raw_path=rest.encode(), root_path=root)
                await self.app(inner, receive, send)
                return
        else:
            if _UNPREFIXED.search(path):
                await self.app(scope, receive, send)
                return
        self.refused.append(path)
        await _not_found(path, send)


async def _not_found(path: str, send: Any) -> None:
    body = json.dumps({"status": 404, "error": "Not Found", "path": path,
                       "message": "no such path on this ANAF host"}).encode()
    await send({"type": "http.response.start", "status": 404,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
