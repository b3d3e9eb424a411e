"""Offline validation of the deployment: renders every kustomize target and checks it against the Kubernetes
schemas (kubernetes-validate bundles them; nothing is downloaded), the CRDs we use by their own rules, our
policies (security context, probes, PDBs, no secret values), the gateway's routes on the Ingress, and that
every setting a service reads is provided (ConfigMap or Secret reference) unless its default is safe.

    python tools/validate_k8s.py [--k8s-dir deploy/k8s] [--compose docker-compose.yml]

kustomize is installed with `go install` into ~/.cache/spvhub/kustomize-<version>/bin once per machine.
"""
from __future__ import annotations

import argparse
import importlib
import os
import re
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

from spvhub_devtools.gateway_conf import SERVICES, read_env_file, routes, web_routes  # noqa: E402

KUSTOMIZE_VERSION = "v5.8.1"
K8S_VERSION = "1.33.0"
TARGETS = ("base", "overlays/dev", "overlays/prod", "infrastructure", "monitoring")
CACHE = Path(os.environ.get("SPVHUB_CACHE", Path.home() / ".cache" / "spvhub"))

# --- settings: which fields a deployment must provide -------------------------------------------------
ADDRESS = re.compile(r"(^|_)(host|port|url|uri|endpoint|bootstrap|database)$|^anaf_(oauth|api|public|spv)_base$")
CREDENTIAL = re.compile(r"(^|_)(key|secret|password|username|user|token)$")
ALWAYS_REQUIRED = {"env", "log_level", "anaf_env", "anaf_client_id", "mail_from", "token_key_active"}
# Address-like fields whose code default is right in every deployment, and why.
SAFE_DEFAULTS = {
    "pg_database": "spvhub_<service> by convention: one database per service",
    "clock_url": "dev/test only: follow the ANAF emulator's clock (empty = real time)",
    "kafka_topic_prefix": "test isolation only",
    "ui_base_url": "person-facing links: empty = public_base_url (spvhub web behind the gateway)",
    "anaf_emulator_url": "dev/test only: every ANAF host family on the emulator (empty = the four ANAF bases)",
}

# spvhub web's own settings a deployment must set (its other fields are tunables or come from spvhub-config).
WEB_REQUIRED = ("SPVHUB_WEB_GATEWAY_URL", "SPVHUB_WEB_PUBLIC_URL", "SPVHUB_WEB_SESSION_KEY")

# --- CRDs: not in the Kubernetes schemas; checked here by their required structure --------------------
CRD_RULES: dict[tuple[str, str], list[str]] = {
    ("kafka.strimzi.io/v1beta2", "Kafka"): ["spec.kafka.listeners", "spec.kafka.version"],
    ("kafka.strimzi.io/v1beta2", "KafkaNodePool"): ["metadata.labels.strimzi.io/cluster", "spec.replicas",
                                                    "spec.roles", "spec.storage"],
    ("kafka.strimzi.io/v1beta2", "KafkaTopic"): ["metadata.labels.strimzi.io/cluster", "spec.partitions",
                                                 "spec.replicas", "spec.topicName"],
    ("postgresql.cnpg.io/v1", "Cluster"): ["spec.instances", "spec.storage.size"],
    ("postgresql.cnpg.io/v1", "Database"): ["spec.name", "spec.owner", "spec.cluster.name"],
    ("monitoring.coreos.com/v1", "PodMonitor"): ["spec.selector", "spec.podMetricsEndpoints"],
    ("monitoring.coreos.com/v1", "PrometheusRule"): ["spec.groups"],
}


def kustomize_bin() -> Path:
    """kustomize from the Go module proxy, cached by version."""
    binary = CACHE / f"kustomize-{KUSTOMIZE_VERSION}" / "bin" / "kustomize"
    if binary.exists():
        return binary
    go = os.environ.get("GO", "go")
    if not any((Path(p) / "go").exists() for p in os.environ.get("PATH", "").split(os.pathsep)):
        go = "/usr/local/go/bin/go" if Path("/usr/local/go/bin/go").exists() else go
    env = dict(os.environ, GOBIN=str(binary.parent), CGO_ENABLED="0", GOTOOLCHAIN="local",
               GOMODCACHE=str(CACHE / "gomodcache"), GOPATH=str(CACHE / "gopath"), GOFLAGS="-mod=mod")
    print(f"installing kustomize {KUSTOMIZE_VERSION} into {binary.parent} (once per machine)", file=sys.stderr)
    subprocess.run([go, "install", "-trimpath", "-ldflags", "-s -w",
                    f"sigs.k8s.io/kustomize/kustomize/v5@{KUSTOMIZE_VERSION}"], check=True, env=env)
    return binary


def render(k8s_dir: Path, target: str) -> list[dict[str, Any]]:
    out = subprocess.run([str(kustomize_bin()), "build", str(k8s_dir / target)], capture_output=True, text=True)
    if out.returncode != 0:
        raise RenderError(f"{target}: kustomize build failed: {out.stderr.strip()[:2000]}")
    return [d for d in yaml.safe_load_all(out.stdout) if d]


class RenderError(Exception):
    pass


def _get(doc: Any, dotted: str) -> Any:
    # keys may contain dots (labels): try the longest key first
    if not dotted:
        return doc
    if not isinstance(doc, dict):
        return None
    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        key = ".".join(parts[:i])
        if key in doc:
            return _get(doc[key], ".".join(parts[i:]))
    return None


def _name(doc: dict[str, Any]) -> str:
    return f"{doc.get('kind')}/{doc.get('metadata', {}).get('name')}"


# ------------------------------------------------------------------------------------------ schema checks
_VALIDATORS: dict[tuple[str, str], Any] = {}


class NoSchema(Exception):
    pass


def schema_validator(api_version: str, kind: str) -> Any:
    """A strict JSON-schema validator for one kind, from the schemas kubernetes-validate ships (cached: the
    package's own validate() re-reads the large definitions file for every object)."""
    import json

    import jsonschema
    import kubernetes_validate
    from referencing import Registry, Resource

    key = (api_version, kind)
    if key not in _VALIDATORS:
        base = Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema" / f"v{K8S_VERSION}-local-strict"
        api = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
        path = base / f"{kind.lower()}-{api}.json"
        if not path.exists():
            raise NoSchema(f"no schema for {kind} {api_version} in Kubernetes {K8S_VERSION}")
        if "defs" not in _VALIDATORS:
            _VALIDATORS["defs"] = Resource.from_contents(json.loads((base / "_definitions.json").read_text()))
        schema = json.loads(path.read_text())
        registry = Resource.from_contents(schema) @ (_VALIDATORS["defs"] @ Registry())
        _VALIDATORS[key] = jsonschema.Draft202012Validator(schema, registry=registry)
    return _VALIDATORS[key]


def schema_problems(docs: Iterable[dict[str, Any]], target: str, crds_seen: set[str]) -> list[str]:
    problems = []
    for doc in docs:
        key = (doc.get("apiVersion", ""), doc.get("kind", ""))
        if key in CRD_RULES:
            crds_seen.add(f"{key[1]} ({key[0]})")
            for path in CRD_RULES[key]:
                if _get(doc, path) in (None, "", []):
                    problems.append(f"{target}: {_name(doc)}: custom resource lacks {path}")
            continue
        group = key[0].split("/")[0] if "/" in key[0] else ""
        if "." in group and not group.endswith(".k8s.io"):
            problems.append(f"{target}: {_name(doc)}: custom resource kind {key} has no rules in CRD_RULES")
            continue
        try:
            validator = schema_validator(key[0], key[1])
        except NoSchema as exc:
            problems.append(f"{target}: {_name(doc)}: {exc}")
            continue
        for err in sorted(validator.iter_errors(doc), key=lambda e: list(e.path))[:5]:
            where = "/".join(str(p) for p in err.path)
            problems.append(f"{target}: {_name(doc)}: schema: {err.message[:300]} (at {where})")
    return problems


# ------------------------------------------------------------------------------------------ policy checks
WORKLOADS = {"Deployment", "StatefulSet", "Job", "DaemonSet"}


def _pod_spec(doc: dict[str, Any]) -> dict[str, Any]:
    return doc["spec"]["template"]["spec"]  # type: ignore[no-any-return]


def policy_problems(docs: list[dict[str, Any]], target: str) -> list[str]:
    problems = []
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for d in docs:
        by_kind.setdefault(d["kind"], []).append(d)

    for d in by_kind.get("Secret", []):
        if d.get("data") or d.get("stringData"):
            problems.append(f"{target}: {_name(d)}: secret values must not be in git (reference the Secret only)")

    for d in [d for k in WORKLOADS for d in by_kind.get(k, [])]:
        pod = _pod_spec(d)
        psc = pod.get("securityContext", {})
        for c in pod.get("containers", []) + pod.get("initContainers", []):
            sc = c.get("securityContext", {})
            where = f"{target}: {_name(d)} container {c['name']}"
            if not (sc.get("runAsNonRoot") or psc.get("runAsNonRoot")):
                problems.append(f"{where}: runAsNonRoot is not set")
            if sc.get("readOnlyRootFilesystem") is not True:
                problems.append(f"{where}: readOnlyRootFilesystem must be true")
            if sc.get("allowPrivilegeEscalation") is not False:
                problems.append(f"{where}: allowPrivilegeEscalation must be false")
            if "ALL" not in (sc.get("capabilities", {}).get("drop") or []):
                problems.append(f"{where}: capabilities must drop ALL")
            if sc.get("privileged"):
                problems.append(f"{where}: privileged")
            seccomp = (sc.get("seccompProfile") or psc.get("seccompProfile") or {}).get("type")
            if seccomp not in ("RuntimeDefault", "Localhost"):
                problems.append(f"{where}: seccompProfile must be RuntimeDefault")
            res = c.get("resources", {})
            if not res.get("requests") or not res.get("limits", {}).get("memory"):
                problems.append(f"{where}: resources need requests and a memory limit")
            if d["kind"] in ("Deployment", "StatefulSet") and not (c.get("livenessProbe") and c.get("readinessProbe")):
                problems.append(f"{where}: liveness and readiness probes are required")

    # PodDisruptionBudgets where a workload runs more than one replica, and none that would block a drain.
    hpa_min = {h["spec"]["scaleTargetRef"]["name"]: h["spec"].get("minReplicas", 1)
               for h in by_kind.get("HorizontalPodAutoscaler", [])}
    deployments = {d["metadata"]["name"]: d for d in by_kind.get("Deployment", [])}
    for h in by_kind.get("HorizontalPodAutoscaler", []):
        if h["spec"]["scaleTargetRef"]["name"] not in deployments:
            problems.append(f"{target}: {_name(h)} scales a Deployment that does not exist")
    for name, d in deployments.items():
        replicas = max(d["spec"].get("replicas", 1), hpa_min.get(name, 0))
        labels = d["spec"]["template"]["metadata"].get("labels", {})
        pdbs = [p for p in by_kind.get("PodDisruptionBudget", [])
                if p["spec"].get("selector", {}).get("matchLabels")
                and all(labels.get(k) == v for k, v in p["spec"]["selector"]["matchLabels"].items())]
        if replicas > 1 and not pdbs:
            problems.append(f"{target}: Deployment/{name} runs {replicas} replicas without a PodDisruptionBudget")
        if replicas <= 1 and any(p["spec"].get("minAvailable", 0) not in (0, "0%") for p in pdbs):
            problems.append(f"{target}: Deployment/{name} has 1 replica and a PDB with minAvailable: "
                            "drains would block")

    # Services select pods that exist.
    pod_labels = [d["spec"]["template"]["metadata"].get("labels", {})
                  for k in ("Deployment", "StatefulSet") for d in by_kind.get(k, [])]
    for s in by_kind.get("Service", []):
        sel = s["spec"].get("selector")
        if sel and not any(all(lab.get(k) == v for k, v in sel.items()) for lab in pod_labels):
            problems.append(f"{target}: {_name(s)} selects no pod")

    # ConfigMaps referenced exist in the render.
    cms = {c["metadata"]["name"] for c in by_kind.get("ConfigMap", [])}
    for d in [d for k in WORKLOADS for d in by_kind.get(k, [])]:
        for c in _pod_spec(d)["containers"]:
            for ef in c.get("envFrom", []):
                ref = ef.get("configMapRef", {}).get("name")
                if ref and ref not in cms:
                    problems.append(f"{target}: {_name(d)}: envFrom ConfigMap {ref} is not rendered")

    if deployments.keys() & set(SERVICES):
        problems += app_problems(by_kind, deployments, target)
    return problems


def app_problems(by_kind: dict[str, list[dict[str, Any]]], deployments: dict[str, dict[str, Any]],
                 target: str) -> list[str]:
    problems = []
    jobs = {j["metadata"]["name"] for j in by_kind.get("Job", [])}
    for s in SERVICES:
        if s not in deployments:
            problems.append(f"{target}: Deployment/{s} is missing")
        if f"{s}-migrate" not in jobs:
            problems.append(f"{target}: migration Job/{s}-migrate is missing")
    if not any(n["spec"].get("policyTypes") == ["Ingress", "Egress"] and not n["spec"].get("ingress")
               and not n["spec"].get("egress") for n in by_kind.get("NetworkPolicy", [])):
        problems.append(f"{target}: no default-deny NetworkPolicy")

    # The Ingress routes are the gateway's routes (spvhub_devtools.gateway_conf.routes()).
    ingress_paths = {(p["path"], p["backend"]["service"]["name"], p["pathType"])
                     for i in by_kind.get("Ingress", []) for r in i["spec"]["rules"] for p in r["http"]["paths"]}
    for r in routes():
        want = (r.path, r.service, "Exact" if r.exact else "Prefix")
        if want not in ingress_paths:
            problems.append(f"{target}: the Ingress lacks the gateway route {want}")
    gateway_routes = {(r.path, r.service) for r in routes()}
    for path, svc, _t in ingress_paths:
        same = [gp for gp, gs in gateway_routes if gs == svc]
        if svc in SERVICES and not any(path == gp or path.startswith(gp + "/") for gp in same):
            problems.append(f"{target}: the Ingress routes {path} to {svc}, which the gateway does not")

    # spvhub web: deployed with its settings, the gateway runs the config that routes to it, and the Ingress sends
    # every screen to the gateway (or to web itself).
    web = deployments.get("web")
    if web is None:
        problems.append(f"{target}: Deployment/web (spvhub web) is missing")
    else:
        container = next((c for c in _pod_spec(web)["containers"] if c["name"] == "web"), {})
        env = {e["name"]: e for e in container.get("env", [])}
        for var in WEB_REQUIRED:
            if var not in env:
                problems.append(f"{target}: Deployment/web does not set {var}")
        if "secretKeyRef" not in env.get("SPVHUB_WEB_SESSION_KEY", {}).get("valueFrom", {}):
            problems.append(f"{target}: Deployment/web: SPVHUB_WEB_SESSION_KEY must come from a Secret")
        for r in web_routes():
            kind = "Exact" if r.exact else "Prefix"
            if not {(r.path, "gateway", kind), (r.path, "web", kind)} & ingress_paths:
                problems.append(f"{target}: the Ingress lacks spvhub web's route {(r.path, kind)}")
        gw = deployments.get("gateway")
        command = " ".join(c for cont in (_pod_spec(gw)["containers"] if gw else []) for c in cont.get("command", []))
        if "noweb" in command:
            problems.append(f"{target}: Deployment/gateway runs the config without spvhub web")

    # The person's address: spvhub web believes its gateway's X-Forwarded-For (SPVHUB_TRUSTED_PROXIES from
    # spvhub-config) and the gateway image believes the web's (the ranges its Dockerfile bakes in): both are the pod
    # network, so the gateway's limits and auth see the person, never the web.
    if web is not None:
        container = next((c for c in _pod_spec(web)["containers"] if c["name"] == "web"), {})
        values: dict[str, str] = {}
        for ef in container.get("envFrom", []):
            name = ef.get("configMapRef", {}).get("name", "")
            for c in by_kind.get("ConfigMap", []):
                if c["metadata"]["name"] == name:
                    values.update(c.get("data") or {})
        values.update({e["name"]: e.get("value", "") for e in container.get("env", []) if "value" in e})
        web_trusted = values.get("SPVHUB_WEB_TRUSTED_PROXIES") or values.get("SPVHUB_TRUSTED_PROXIES") or ""
        if not web_trusted.strip():
            problems.append(f"{target}: Deployment/web has no SPVHUB_TRUSTED_PROXIES: every login would be the "
                            "gateway's address")
        elif _cidrs(web_trusted) != _cidrs(",".join(gateway_image_trusted_proxies())):
            problems.append(f"{target}: the web trusts {web_trusted} but the gateway image trusts "
                            f"{','.join(gateway_image_trusted_proxies())} (Dockerfile SPVHUB_GATEWAY_TRUSTED_PROXIES)")

    # Every setting a service reads is provided.
    cm_keys = {c["metadata"]["name"]: set((c.get("data") or {}).keys()) for c in by_kind.get("ConfigMap", [])}
    for s in SERVICES:
        d = deployments.get(s)
        if d is None:
            continue
        container = next((c for c in _pod_spec(d)["containers"] if c["name"] == s), None)
        if container is None:
            problems.append(f"{target}: Deployment/{s} has no container named {s}")
            continue
        provided = {e["name"] for e in container.get("env", [])}
        for ef in container.get("envFrom", []):
            provided |= cm_keys.get(ef.get("configMapRef", {}).get("name", ""), set())
        for var in sorted(required_settings(s) - provided):
            problems.append(f"{target}: Deployment/{s} does not provide {var} (ConfigMap spvhub-config or a "
                            "Secret reference; or list it in SAFE_DEFAULTS with the reason)")
    return problems


def _cidrs(value: str) -> set[str]:
    import ipaddress

    return {str(ipaddress.ip_network(c.strip(), strict=False)) for c in value.split(",") if c.strip()}


def gateway_image_trusted_proxies(dockerfile: Path = ROOT / "Dockerfile") -> list[str]:
    """The peers whose X-Forwarded-For the gateway image believes (baked into its nginx.conf at build)."""
    m = re.search(r"^ARG SPVHUB_GATEWAY_TRUSTED_PROXIES=(\S*)", dockerfile.read_text(), re.M)
    return [c for c in (m.group(1).split(",") if m else []) if c]


def settings_fields(service: str) -> dict[str, Any]:
    return dict(importlib.import_module(f"spvhub_{service}.settings").Settings.model_fields)


def classify(service: str) -> tuple[set[str], set[str]]:
    """(required env vars, fields left to safe code defaults) of one service."""
    from pydantic import SecretStr

    required, defaulted = set(), set()
    for field, info in settings_fields(service).items():
        if field == "service_name" or field in SAFE_DEFAULTS:
            defaulted.add(field)
        elif (info.annotation is SecretStr or ADDRESS.search(field) or CREDENTIAL.search(field)
              or field in ALWAYS_REQUIRED or (field.startswith("pg_") and field != "pg_pool_size")
              or info.is_required()):
            required.add(f"SPVHUB_{field.upper()}")
        else:
            defaulted.add(field)
    return required, defaulted


def loopback_settings(service: str) -> set[str]:
    """Env vars whose code default names the host's loopback: wrong inside a container (docker-compose)."""
    return {f"SPVHUB_{f.upper()}" for f, info in settings_fields(service).items()
            if any(h in str(info.default) for h in ("127.0.0.1", "localhost"))}


def required_settings(service: str) -> set[str]:
    return classify(service)[0]


# ------------------------------------------------------------------------------------------ compose checks
def compose_problems(compose: Path) -> list[str]:
    problems = []
    doc = yaml.safe_load(compose.read_text())
    stack = read_env_file(ROOT / "infra" / "stack.env")
    for m in re.finditer(r"\$\{(SPVHUB_[A-Z_]+):-([^}]*)\}", compose.read_text()):
        var, default = m.groups()
        if stack.get(var) != default:
            problems.append(f"{compose.name}: default of ${{{var}}} is {default!r}, infra/stack.env says "
                            f"{stack.get(var)!r}")
    for s in SERVICES:
        svc = doc.get("services", {}).get(s)
        if svc is None:
            problems.append(f"{compose.name}: service {s} is missing")
            continue
        env = set((svc.get("environment") or {}).keys())
        for var in sorted(loopback_settings(s) - env):
            problems.append(f"{compose.name}: {s} does not set {var} (its default points at 127.0.0.1, "
                            "which inside a container is the container itself)")
    return problems


# ------------------------------------------------------------------------------------------ main
def validate(k8s_dir: Path, compose: Path | None = None, *, verbose: bool = True,
             targets: Iterable[str] = TARGETS) -> list[str]:
    problems: list[str] = []
    crds_seen: set[str] = set()
    secrets: set[str] = set()
    for target in targets:
        try:
            docs = render(k8s_dir, target)
        except RenderError as exc:
            problems.append(str(exc))
            continue
        problems += schema_problems(docs, target, crds_seen)
        problems += policy_problems(docs, target)
        for d in docs:
            if d["kind"] in WORKLOADS:
                for c in _pod_spec(d)["containers"]:
                    for e in c.get("env", []):
                        ref = e.get("valueFrom", {}).get("secretKeyRef")
                        if ref:
                            secrets.add(f"{ref['name']}/{ref['key']}")
        if verbose:
            print(f"rendered {target}: {len(docs)} objects")
    if compose is not None:
        problems += compose_problems(compose)
    if verbose:
        print("custom resources checked by CRD_RULES (not in the Kubernetes schemas): " + ", ".join(sorted(crds_seen)))
        print("Secrets the cluster must provide (name/key): " + ", ".join(sorted(secrets)))
        for s in SERVICES:
            print(f"{s}: settings left to safe code defaults: {', '.join(sorted(classify(s)[1]))}")
    return problems


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--k8s-dir", type=Path, default=ROOT / "deploy" / "k8s")
    p.add_argument("--compose", type=Path, default=ROOT / "docker-compose.yml")
    a = p.parse_args(argv)
    problems = validate(a.k8s_dir, a.compose)
    from gen_k8s import check as generated_check  # the generated files are current

    if a.k8s_dir.resolve() == (ROOT / "deploy" / "k8s").resolve():
        problems += generated_check()
    for prob in problems:
        print("FAIL " + prob, file=sys.stderr)
    print(f"{'FAILED' if problems else 'OK'}: {len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
