"""Generates the committed contracts from the code: merged OpenAPI of every service and AsyncAPI 3.0 of the
event catalogue. `python -m spvhub_devtools.contracts generate` rewrites contracts/; `... check` exits 1 and
prints a diff when the code and the committed files diverge (tests/platform/test_contracts.py runs it).
"""
from __future__ import annotations

import argparse
import copy
import difflib
import importlib
import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from spvhub_devtools.gateway_conf import REPO_ROOT, SERVICES, route_matches, routes

CONTRACTS = REPO_ROOT / "contracts"
OPENAPI_FILE = "openapi.json"
OPENAPI_INTERNAL_FILE = "openapi-internal.json"
ASYNCAPI_FILE = "asyncapi.json"
API_VERSION = "1.0.0"
BINDING_VERSION = "0.5.0"
CE_CONTENT_TYPE = "application/cloudevents+json; charset=UTF-8"

# Settings that keep building the apps free of infrastructure (nothing connects before the lifespan runs).
DUMMY_ENV = {"SPVHUB_ENV": "test", "SPVHUB_OTEL_EXPORTER_OTLP_ENDPOINT": "", "SPVHUB_CLOCK_URL": ""}


@contextmanager
def dummy_settings_env() -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in DUMMY_ENV}
    os.environ.update(DUMMY_ENV)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


_BUILT: dict[str, tuple[Any, Any]] = {}


def build_service(name: str) -> tuple[Any, Any]:
    """(FastAPI app, ServiceRuntime) of one service, built with dummy settings and no infrastructure."""
    if name not in _BUILT:
        try:
            _BUILT[name] = _build_service(name)
        except Exception as exc:
            raise RuntimeError(f"building service {name!r} failed: {type(exc).__name__}: {exc}") from exc
    return _BUILT[name]


def _build_service(name: str) -> tuple[Any, Any]:
    with dummy_settings_env():
        mod = importlib.import_module(f"spvhub_{name}.bootstrap")
        settings_mod = importlib.import_module(f"spvhub_{name}.settings")
        getter = getattr(settings_mod, "get_settings", None)
        if getter is not None and hasattr(getter, "cache_clear"):
            getter.cache_clear()
        app, runtime = mod.build()
        if getter is not None and hasattr(getter, "cache_clear"):
            getter.cache_clear()
        return app, runtime


def dump_json(doc: Any) -> str:
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"


# ------------------------------------------------------------------------------------------------ OpenAPI
def is_public_path(path: str) -> bool:
    """Reachable through the gateway and the Ingress (the same route table), and not an internal endpoint."""
    parts = path.strip("/").split("/")
    if path.startswith("/internal/") or (len(parts) > 2 and parts[0] == "api" and parts[2] == "internal"):
        return False
    return any(route_matches(r, path) for r in routes())


def _rename_refs(node: Any, renames: dict[str, str]) -> Any:
    if isinstance(node, dict):
        out = {}
        for k, v in node.items():
            if k == "$ref" and isinstance(v, str) and v.startswith("#/components/schemas/"):
                name = v.rsplit("/", 1)[1]
                out[k] = f"#/components/schemas/{renames.get(name, name)}"
            else:
                out[k] = _rename_refs(v, renames)
        return out
    if isinstance(node, list):
        return [_rename_refs(v, renames) for v in node]
    return node


def merge_openapi(docs: dict[str, dict[str, Any]], *, public: bool) -> dict[str, Any]:
    """Merge per-service OpenAPI documents. Colliding schema names with different bodies are prefixed with
    the service name; a path+method defined by two services is an error."""
    merged: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {
            "title": "spvhub API" if public else "spvhub internal API (service to service)",
            "version": API_VERSION,
            "description": ("All spvhub services behind one gateway base URL. Generated from the service code by "
                            "`python tools/generate.py`; do not edit by hand.") if public else
                           ("Internal endpoints (header X-Service-Token), not routed by the gateway. Generated; "
                            "do not edit by hand."),
        },
        "servers": [{"url": "/"}],
        "tags": [],
        "paths": {},
        "components": {"schemas": {}, "securitySchemes": {}},
    }
    schemas: dict[str, Any] = merged["components"]["schemas"]
    owners: dict[str, str] = {}
    for svc in sorted(docs):
        doc = copy.deepcopy(docs[svc])
        keep = {p: ops for p, ops in doc.get("paths", {}).items() if is_public_path(p) == public}
        comp = doc.get("components", {})
        svc_schemas = comp.get("schemas", {})
        renames = {n: f"{svc}__{n}" for n, s in svc_schemas.items() if n in schemas and schemas[n] != s}
        keep = _rename_refs(keep, renames)
        svc_schemas = _rename_refs(svc_schemas, renames)
        for n, s in svc_schemas.items():
            if n in renames:  # client generators name classes after the title: it must not collide either
                s = {**s, "title": f"{svc.capitalize()}{s.get('title', n)}"}
            n = renames.get(n, n)
            schemas.setdefault(n, s)
            owners.setdefault(n, svc)
        for n, s in comp.get("securitySchemes", {}).items():
            if n in merged["components"]["securitySchemes"] and merged["components"]["securitySchemes"][n] != s:
                raise ValueError(f"security scheme {n} differs between services ({svc})")
            merged["components"]["securitySchemes"][n] = s
        for path, ops in keep.items():
            target = merged["paths"].setdefault(path, {})
            for method, op in ops.items():
                if method in target:
                    raise ValueError(f"{method.upper()} {path} is defined by two services")
                if isinstance(op, dict):
                    op["x-spvhub-service"] = svc
                target[method] = op
        merged["tags"].append({"name": svc, "description": doc.get("info", {}).get("description", "")})
    if public:
        _bearer_security(merged)
    merged["paths"] = dict(sorted(merged["paths"].items()))
    merged["components"]["schemas"] = dict(sorted(schemas.items()))
    if not merged["components"]["securitySchemes"]:
        del merged["components"]["securitySchemes"]
    return merged


def _bearer_security(doc: dict[str, Any]) -> None:
    """Operations that read the `Authorization` header (spvhub_common.security.CurrentUser) are declared as
    bearer-protected instead: OpenAPI ignores a header parameter named Authorization, and this way the docs
    page's "Authorize" button sends the platform JWT."""
    used = False
    for ops in doc["paths"].values():
        for op in ops.values():
            if not isinstance(op, dict):
                continue
            params = op.get("parameters", [])
            auth = [p for p in params if p.get("in") == "header" and str(p.get("name", "")).lower() == "authorization"]
            if auth:
                op["parameters"] = [p for p in params if p not in auth]
                if not op["parameters"]:
                    del op["parameters"]
                op.setdefault("security", [{"bearerAuth": []}])
                used = True
    if used:
        doc["components"].setdefault("securitySchemes", {})["bearerAuth"] = {
            "type": "http", "scheme": "bearer", "bearerFormat": "JWT",
            "description": "Platform access token from POST /api/auth/login (RS256, JWKS at /.well-known/jwks.json)"}


def service_openapi_docs() -> dict[str, dict[str, Any]]:
    return {s: build_service(s)[0].openapi() for s in SERVICES}


def build_openapi(docs: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    return merge_openapi(docs or service_openapi_docs(), public=True)


def build_internal_openapi(docs: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    return merge_openapi(docs or service_openapi_docs(), public=False)


# ------------------------------------------------------------------------------------------------ AsyncAPI
def _summary(cls: Any) -> str:
    doc = (cls.__dict__.get("__doc__") or "").strip()
    return doc.splitlines()[0] if doc else f"{cls.topic} event, version {cls.version}"


def _message_name(cls: Any) -> str:
    return f"{cls.topic}.v{cls.version}"


def consumers_by_service() -> dict[str, list[tuple[str, list[Any]]]]:
    """For each service, its consumer groups and the event classes each routes (from the bootstraps)."""
    out: dict[str, list[tuple[str, list[Any]]]] = {}
    for s in SERVICES:
        _app, runtime = build_service(s)
        out[s] = [(c.name, sorted(c.routes, key=lambda k: k.event_type())) for c in runtime.consumers]
    return out


def build_asyncapi(consumers: dict[str, list[tuple[str, list[Any]]]] | None = None) -> dict[str, Any]:
    from pydantic.json_schema import models_json_schema
    from spvhub_common.events import CloudEvent, catalogue

    consumers = consumers if consumers is not None else consumers_by_service()
    published = catalogue()
    classes = [published[t] for t in sorted(published)]
    keyed, defs = models_json_schema([(c, "serialization") for c in classes] + [(CloudEvent, "serialization")],
                                     ref_template="#/components/schemas/{model}")
    schemas: dict[str, Any] = dict(defs.get("$defs", {}))
    envelope_ref = keyed[(CloudEvent, "serialization")]["$ref"]

    messages: dict[str, Any] = {}
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    for cls in classes:
        name = _message_name(cls)
        payload_ref = keyed[(cls, "serialization")]["$ref"]
        key_desc = (f"Kafka record key: the value of data.{cls.key_field} (also the CloudEvents `subject` and "
                    f"`partitionkey`); ordering is guaranteed per key." if cls.key_field else
                    "No key: records are spread over partitions, no ordering between them.")
        env_schema_name = f"{name}.envelope"
        schemas[env_schema_name] = {
            "title": f"CloudEvent {cls.event_type()}",
            "allOf": [{"$ref": envelope_ref}],
            "type": "object",
            "required": ["specversion", "id", "source", "type", "time", "data"],
            "properties": {
                "type": {"const": cls.event_type()},
                "source": {"const": f"/spvhub/{cls.topic.split('.', 1)[0]}"},
                "dataschema": {"const": f"urn:spvhub:events:{cls.topic}:v{cls.version}"},
                "data": {"$ref": payload_ref},
            },
        }
        messages[name] = {
            "name": cls.__name__,
            "title": f"{cls.__name__} v{cls.version}",
            "summary": _summary(cls),
            "contentType": CE_CONTENT_TYPE,
            "headers": {"type": "object", "properties": {
                "content-type": {"type": "string", "const": CE_CONTENT_TYPE},
                "traceparent": {"type": "string", "description": "W3C trace context (also in the envelope)"}}},
            "payload": {"$ref": f"#/components/schemas/{env_schema_name}"},
            "bindings": {"kafka": {"key": {"type": "string", "description": key_desc},
                                   "bindingVersion": BINDING_VERSION}},
            "x-spvhub-key-field": cls.key_field or None,
            "x-cloudevents-type": cls.event_type(),
        }
        ch = channels.setdefault(cls.topic, {
            "address": cls.topic,
            "title": cls.topic,
            "description": f"Published by {cls.topic.split('.', 1)[0]} through its transactional outbox "
                           "(at-least-once; consumers deduplicate by CloudEvent id).",
            "messages": {},
            "bindings": {"kafka": {"topic": cls.topic, "bindingVersion": BINDING_VERSION}},
        })
        ch["messages"][name] = {"$ref": f"#/components/messages/{name}"}

    for topic in sorted(channels):
        producer = topic.split(".", 1)[0]
        operations[f"{producer}.send.{topic}"] = {
            "action": "send",
            "title": f"{producer} publishes {topic}",
            "channel": {"$ref": f"#/channels/{topic}"},
            "messages": [{"$ref": f"#/channels/{topic}/messages/{m}"} for m in channels[topic]["messages"]],
        }

    consumed_topics: set[str] = set()
    for svc in sorted(consumers):
        for group, routed in consumers[svc]:
            by_topic: dict[str, list[str]] = {}
            for cls in routed:
                by_topic.setdefault(cls.topic, []).append(_message_name(cls))
            for topic, names in sorted(by_topic.items()):
                consumed_topics.add(topic)
                operations[f"{group}.receive.{topic}"] = {
                    "action": "receive",
                    "title": f"{svc} ({group}) consumes {topic}",
                    "channel": {"$ref": f"#/channels/{topic}"},
                    "messages": [{"$ref": f"#/channels/{topic}/messages/{n}"} for n in names],
                    "bindings": {"kafka": {"groupId": {"type": "string", "const": group},
                                           "bindingVersion": BINDING_VERSION}},
                }
    for topic in sorted(consumed_topics):
        dlt = f"{topic}.dlt"
        channels[dlt] = {
            "address": dlt,
            "title": dlt,
            "description": f"Dead letters of {topic}: the original record (same key and body) plus headers "
                           "dlt-reason, dlt-consumer, dlt-topic, dlt-partition, dlt-offset.",
            "messages": dict(channels[topic]["messages"]),
            "bindings": {"kafka": {"topic": dlt, "bindingVersion": BINDING_VERSION}},
        }
        operations[f"dead-letter.send.{dlt}"] = {
            "action": "send",
            "title": f"a consumer of {topic} dead-letters a poison record",
            "channel": {"$ref": f"#/channels/{dlt}"},
            "messages": [{"$ref": f"#/channels/{dlt}/messages/{m}"} for m in channels[dlt]["messages"]],
        }

    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "spvhub events",
            "version": API_VERSION,
            "description": ("Every topic of the event catalogue (spvhub_common.events). Records are CloudEvents 1.0 "
                            "in structured mode (JSON). Versioning rules: docs/events.md. Generated by "
                            "`python tools/generate.py`; do not edit by hand."),
        },
        "defaultContentType": CE_CONTENT_TYPE,
        "servers": {
            "dev": {"host": "127.0.0.1:19092", "protocol": "kafka", "description": "./dev stack (infra/stack.env)"},
            "cluster": {"host": "spvhub-kafka-bootstrap:9092", "protocol": "kafka",
                        "description": "Strimzi cluster of deploy/k8s/infrastructure"},
        },
        "channels": dict(sorted(channels.items())),
        "operations": dict(sorted(operations.items())),
        "components": {"schemas": dict(sorted(schemas.items())), "messages": dict(sorted(messages.items()))},
    }


# ------------------------------------------------------------------------------------------------ versioning
_NOISE = {"title", "description", "examples"}


def _resolve(doc: dict[str, Any], node: Any) -> Any:
    while isinstance(node, dict) and "$ref" in node and len(node) == 1:
        node = doc["components"]["schemas"][node["$ref"].rsplit("/", 1)[1]]
    return node


def _normalized(doc: dict[str, Any], node: Any, depth: int = 0) -> Any:
    """A schema with refs inlined and documentation stripped, to compare meaning across two documents."""
    node = _resolve(doc, node)
    if depth > 20:
        return node
    if isinstance(node, dict):
        return {k: _normalized(doc, v, depth + 1) for k, v in node.items() if k not in _NOISE}
    if isinstance(node, list):
        return [_normalized(doc, v, depth + 1) for v in node]
    return node


def _payload(doc: dict[str, Any], message: str) -> dict[str, Any]:
    env = doc["components"]["schemas"][f"{message}.envelope"]
    return _resolve(doc, env["properties"]["data"])  # type: ignore[no-any-return]


def breaking_event_changes(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Changes to an already published `topic.vN` that docs/events.md says need version N+1."""
    problems = []
    old_msgs, new_msgs = old.get("components", {}).get("messages", {}), new["components"]["messages"]
    for name in sorted(old_msgs):
        if name not in new_msgs:
            problems.append(f"{name}: removed from the catalogue (only after every consumer moved to a newer "
                            "version)")
            continue
        try:
            before, after = _payload(old, name), _payload(new, name)
        except KeyError:
            continue
        if old_msgs[name].get("x-spvhub-key-field") != new_msgs[name].get("x-spvhub-key-field"):
            problems.append(f"{name}: key field changed")
        b_props, a_props = before.get("properties", {}), after.get("properties", {})
        b_req, a_req = set(before.get("required", [])), set(after.get("required", []))
        for field in sorted(set(b_props) - set(a_props)):
            problems.append(f"{name}: field {field!r} removed")
        for field in sorted((a_req - b_req) & set(b_props)):
            problems.append(f"{name}: field {field!r} became required")
        for field in sorted((a_req - b_req) - set(b_props)):
            problems.append(f"{name}: new required field {field!r} (add it with a default instead)")
        for field in sorted(set(b_props) & set(a_props)):
            b = _normalized(old, b_props[field])
            a = _normalized(new, a_props[field])
            if isinstance(b, dict) and isinstance(a, dict):
                b, a = {k: v for k, v in b.items() if k != "default"}, {k: v for k, v in a.items() if k != "default"}
            if a != b:
                problems.append(f"{name}: field {field!r} changed its schema")
    return problems


# ------------------------------------------------------------------------------------------------ CLI
def generate_all() -> dict[str, str]:
    docs = service_openapi_docs()
    return {
        OPENAPI_FILE: dump_json(build_openapi(docs)),
        OPENAPI_INTERNAL_FILE: dump_json(build_internal_openapi(docs)),
        ASYNCAPI_FILE: dump_json(build_asyncapi()),
    }


def check(directory: Path = CONTRACTS) -> list[str]:
    """Names of contract files whose committed text differs from what the code generates, with diffs."""
    problems = []
    generated = generate_all()
    committed_asyncapi = directory / ASYNCAPI_FILE
    if committed_asyncapi.exists():
        breaking = breaking_event_changes(json.loads(committed_asyncapi.read_text()),
                                          json.loads(generated[ASYNCAPI_FILE]))
        if breaking:
            problems.append("BREAKING event changes (docs/events.md: make a new class with version N+1):\n  "
                            + "\n  ".join(breaking))
    for name, text in generated.items():
        path = directory / name
        old = path.read_text() if path.exists() else ""
        if old != text:
            diff = "".join(difflib.unified_diff(old.splitlines(True), text.splitlines(True),
                                                f"committed/{name}", f"generated/{name}", n=2))
            problems.append(f"{name} differs from the code:\n{diff[:6000]}")
    return problems


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Generate or check contracts/ (OpenAPI, AsyncAPI) from the code")
    p.add_argument("command", choices=["generate", "check"])
    p.add_argument("--dir", type=Path, default=CONTRACTS)
    a = p.parse_args(argv)
    if a.command == "generate":
        a.dir.mkdir(parents=True, exist_ok=True)
        for name, text in generate_all().items():
            (a.dir / name).write_text(text)
            print(f"wrote {a.dir / name}")
        return 0
    problems = check(a.dir)
    for prob in problems:
        print(prob, file=sys.stderr)
    if problems:
        print("contracts are stale: run `python -m spvhub_devtools.contracts generate` and commit contracts/",
              file=sys.stderr)
        return 1
    print("contracts match the code")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
