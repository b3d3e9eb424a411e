"""Error answers in the caller's language and the error body in the OpenAPI: Accept-Language when it names ro or
en, else the signed-in caller's one locale (the token's `locale` claim, read from the principal the security
dependency verified), else Romanian; request-validation errors included. Every operation declares the platform's
error body for its refusals instead of FastAPI's `HTTPValidationError`."""
from __future__ import annotations

import json
from typing import Any

import httpx
from fastapi import APIRouter
from pydantic import BaseModel
from spvhub_common.errors import AppError, validation_message
from spvhub_common.http import create_app
from spvhub_common.security import CurrentUser, Principal
from spvhub_common.settings import ServiceSettings
from spvhub_devtools.testtokens import TokenMinter

MINTER = TokenMinter()


class Item(BaseModel):
    name: str
    quantity: int


def refusal() -> AppError:
    return AppError("You have no access to this company.", code="no_access_to_company", status=403,
                    details={"cif": "25377198"}, messages={"ro": "Nu aveți acces la această companie."})


class CountingVerifier:
    """The real verifier, counting calls: the error handler must not verify the token again."""

    def __init__(self) -> None:
        self.inner = MINTER.verifier()
        self.calls = 0

    async def verify(self, token: str) -> Principal:
        self.calls += 1
        return await self.inner.verify(token)


def _app() -> tuple[httpx.AsyncClient, CountingVerifier, Any]:
    router = APIRouter()

    @router.get("/api/x/companies/{cif}")
    async def company(cif: str, user: CurrentUser) -> dict[str, str]:
        raise refusal()

    @router.get("/api/x/public")
    async def public() -> dict[str, str]:
        raise refusal()

    @router.post("/api/x/items", responses={409: {"description": "item_exists"}})
    async def items(body: Item, user: CurrentUser, limit: int = 10) -> dict[str, str]:
        return {"name": body.name}

    @router.post("/api/x/public-items")
    async def public_items(body: Item) -> dict[str, str]:
        return {"name": body.name}

    app = create_app(ServiceSettings(service_name="x", env="test"), title="t", description="t", routers=[router])
    verifier = CountingVerifier()
    app.state.jwks = verifier
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://svc")
    return client, verifier, app


def auth(locale: str) -> dict[str, str]:
    return MINTER.headers("u-1", email="ana@example.ro", locale=locale)


async def test_a_user_whose_locale_is_english_gets_english_without_accept_language() -> None:
    client, verifier, _ = _app()
    r = await client.get("/api/x/companies/25377198", headers=auth("en"))
    assert r.status_code == 403
    assert r.json()["error"] == {"code": "no_access_to_company", "message": "You have no access to this company.",
                                 "details": {"cif": "25377198"}}
    assert verifier.calls == 1  # the handler read the verified principal, it did not decode the token again
    ro_user = await client.get("/api/x/companies/25377198", headers=auth("ro"))
    assert ro_user.json()["error"]["message"] == "Nu aveți acces la această companie."


async def test_accept_language_overrides_the_locale_and_anonymous_callers_get_romanian() -> None:
    client, _, _ = _app()
    ro = await client.get("/api/x/companies/25377198", headers={**auth("en"), "Accept-Language": "ro-RO,en;q=0.5"})
    assert ro.json()["error"]["message"] == "Nu aveți acces la această companie."
    en = await client.get("/api/x/companies/25377198", headers={**auth("ro"), "Accept-Language": "en-GB"})
    assert en.json()["error"]["message"] == "You have no access to this company."
    # a language neither ro nor en: the user's locale decides
    other = await client.get("/api/x/companies/25377198", headers={**auth("en"), "Accept-Language": "de-DE"})
    assert other.json()["error"]["message"] == "You have no access to this company."
    anonymous = await client.get("/api/x/public")
    assert anonymous.json()["error"]["message"] == "Nu aveți acces la această companie."
    assert (await client.get("/api/x/public", headers={"Accept-Language": "en"})).json()["error"]["message"] \
        == "You have no access to this company."


async def test_validation_errors_name_the_fields_in_the_callers_language() -> None:
    client, _, _ = _app()
    body = {"name": "pâine"}  # quantity missing
    ro = await client.post("/api/x/items?limit=many", json=body, headers=auth("ro"))
    assert ro.status_code == 422
    err = ro.json()["error"]
    assert err["code"] == "validation_error"
    assert err["message"] == "Cererea nu este validă: verificați câmpurile „limit”, „quantity”."
    assert {f["field"] for f in err["details"]["fields"]} == {"query.limit", "quantity"}
    assert all(f["problem"] for f in err["details"]["fields"])

    en_user = await client.post("/api/x/items", json=body, headers=auth("en"))
    assert en_user.json()["error"]["message"] == "The request is not valid: check the field 'quantity'."
    asked = await client.post("/api/x/items", json=body, headers={**auth("ro"), "Accept-Language": "en"})
    assert asked.json()["error"]["message"].startswith("The request is not valid")
    anonymous = await client.post("/api/x/public-items", json=body)
    assert anonymous.status_code == 422
    assert anonymous.json()["error"]["message"] == "Cererea nu este validă: verificați câmpul „quantity”."
    assert (await client.post("/api/x/public-items", json=body, headers={"Accept-Language": "en-US"})).json()[
        "error"]["message"] == "The request is not valid: check the field 'quantity'."
    assert validation_message(["email", "email"], "ro") == "Cererea nu este validă: verificați câmpul „email”."


def test_every_operation_declares_the_platforms_error_body() -> None:
    _, _, app = _app()
    doc = app.openapi()
    text = json.dumps(doc)
    assert "HTTPValidationError" not in text and "ValidationError" not in doc["components"]["schemas"]
    body = doc["components"]["schemas"]["ErrorResponse"]
    assert body["required"] == ["error"]
    assert set(doc["components"]["schemas"]["ErrorBody"]["properties"]) == {"code", "message", "details"}
    error_ref = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}}

    company = doc["paths"]["/api/x/companies/{cif}"]["get"]["responses"]
    assert set(company) == {"200", "401", "403", "404", "422", "default"}
    public = doc["paths"]["/api/x/public"]["get"]["responses"]
    assert set(public) == {"200", "422", "default"}  # no token read, no path parameter, a read
    items = doc["paths"]["/api/x/items"]["post"]["responses"]
    assert set(items) == {"200", "401", "403", "409", "422", "default"}
    assert items["409"]["description"] == "item_exists"  # the route's own wording stays
    for answers in (company, public, items):
        for status, answer in answers.items():
            if status != "200":
                assert answer["content"] == error_ref, (status, answer)
    assert app.openapi() is doc  # built once
