"""Deployment assets: generated manifests are current, every kustomize target renders and validates offline,
deliberately broken manifests fail the check, docker-compose agrees with infra/stack.env and the Dockerfile
keeps its promises (non-root, one image, constraints)."""
from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))

import gen_k8s  # noqa: E402
import validate_k8s  # noqa: E402

K8S = ROOT / "deploy" / "k8s"


def test_generated_manifests_match_the_code() -> None:
    problems = gen_k8s.check()
    assert not problems, "\n".join(problems)


def test_every_target_renders_and_validates_offline() -> None:
    problems = validate_k8s.validate(K8S, ROOT / "docker-compose.yml", verbose=False)
    assert problems == [], "\n".join(problems)


def _edit(path: Path, old: str, new: str, count: int = 1) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, count))


def _add_secret(k8s: Path) -> None:
    (k8s / "base" / "leak.yaml").write_text(yaml.safe_dump(
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "spvhub-s3"},
         "stringData": {"secret-key": "hunter2hunter2"}}))
    _edit(k8s / "base" / "kustomization.yaml", "  - generated/auth.yaml", "  - leak.yaml\n  - generated/auth.yaml")


BREAKAGES = {
    "schema: wrong type": (lambda k: _edit(k / "base/generated/auth.yaml", "containerPort: 8000",
                                           "containerPort: eight-thousand"), "schema"),
    "schema: unknown field": (lambda k: _edit(k / "base/generated/portfolio.yaml", "  revisionHistoryLimit: 5",
                                              "  revisionHistoryLimit: 5\n  replicaz: 3"), "replicaz"),
    "a setting is not provided": (lambda k: _edit(k / "base/config.env", "SPVHUB_AUTH_URL=http://auth:8000\n", ""),
                                  "does not provide SPVHUB_AUTH_URL"),
    "writable root filesystem": (lambda k: _edit(k / "base/generated/notifier.yaml", "readOnlyRootFilesystem: true",
                                                 "readOnlyRootFilesystem: false"), "readOnlyRootFilesystem"),
    "a secret value in git": (_add_secret, "secret values must not be in git"),
    "a gateway route missing on the Ingress": (lambda k: _edit(k / "base/generated/ingress.yaml",
                                                               "path: /api/notifier", "path: /api/notifications"),
                                               "lacks the gateway route"),
    "a probe missing": (lambda k: _edit(k / "base/generated/efactura.yaml", "        readinessProbe:",
                                        "        readinessProbeX:"), "readinessProbeX"),
    "a CRD without its required fields": (lambda k: _edit(k / "infrastructure/generated/topics.yaml",
                                                          "  partitions: 12", "  partitionz: 12"),
                                          "custom resource lacks spec.partitions"),
    "spvhub web's screens missing on the Ingress": (lambda k: _edit(k / "base/generated/ingress.yaml",
                                                                   "path: /join", "path: /joinx"),
                                                    "lacks spvhub web's route ('/join', 'Prefix')"),
    "spvhub web's session key not from a Secret": (lambda k: _edit(
        k / "base/generated/web.yaml", "secretKeyRef:\n              name: spvhub-web\n              key: session-key",
        "configMapKeyRef:\n              name: spvhub-config\n              key: SPVHUB_ENV"),
        "SPVHUB_WEB_SESSION_KEY must come from a Secret"),
    "the gateway without spvhub web": (lambda k: _edit(k / "base/generated/gateway.yaml", "/nginx.conf",
                                                       "/nginx-noweb.conf"), "without spvhub web"),
    "a broken kustomization": (lambda k: _edit(k / "base/kustomization.yaml", "generated/gateway.yaml",
                                               "generated/nope.yaml"), "kustomize build failed"),
}


@pytest.mark.parametrize("name", sorted(BREAKAGES))
def test_a_deliberately_broken_manifest_fails_the_check(name: str, tmp_path: Path) -> None:
    k8s = tmp_path / "k8s"
    shutil.copytree(K8S, k8s)
    breaker, expected = BREAKAGES[name]
    breaker(k8s)
    target = "infrastructure" if "CRD" in name else "base"
    problems = validate_k8s.validate(k8s, None, verbose=False, targets=[target])
    assert problems, f"{name}: the check passed a broken manifest"
    assert any(expected in p for p in problems), problems


def test_a_pdb_on_a_single_replica_deployment_is_refused() -> None:
    docs = validate_k8s.render(K8S, "overlays/prod")
    for d in docs:
        if d["kind"] == "Deployment":
            d["spec"]["replicas"] = 1
    docs = [d for d in docs if d["kind"] != "HorizontalPodAutoscaler"]
    problems = validate_k8s.policy_problems(docs, "prod")
    assert any("drains would block" in p for p in problems), problems
    docs = [d for d in docs if d["kind"] != "PodDisruptionBudget"]
    for d in docs:
        if d["kind"] == "Deployment":
            d["spec"]["replicas"] = 3
    assert any("without a PodDisruptionBudget" in p for p in validate_k8s.policy_problems(docs, "prod"))


def test_a_new_setting_without_a_value_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    real = validate_k8s.settings_fields

    def with_new_field(service: str):  # type: ignore[no-untyped-def]
        fields = real(service)
        if service == "efactura":
            from pydantic.fields import FieldInfo
            fields["ledger_url"] = FieldInfo(annotation=str, default="http://127.0.0.1:1")
        return fields

    monkeypatch.setattr(validate_k8s, "settings_fields", with_new_field)
    problems = validate_k8s.validate(K8S, ROOT / "docker-compose.yml", verbose=False, targets=["base"])
    assert any("efactura does not provide SPVHUB_LEDGER_URL" in p for p in problems), problems
    assert any("efactura does not set SPVHUB_LEDGER_URL" in p for p in problems), problems


def test_compose_reads_the_stack_ports_and_builds_one_image() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert validate_k8s.compose_problems(ROOT / "docker-compose.yml") == []
    images = {s.get("image") for name, s in compose["services"].items()
              if name in gen_k8s.SERVICES or name in ("emulator", "mailbox")}
    assert images == {"spvhub:dev"}
    for name in gen_k8s.SERVICES:
        assert "infra/stack.env" in compose["services"][name]["env_file"]
    assert compose["services"]["kafka"]["image"].startswith("apache/kafka:4.1.")
    assert compose["services"]["postgres"]["image"] == "postgres:15"


def test_dockerfile_is_multistage_non_root_and_pinned() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert "python:3.11-slim" in text
    assert text.count("FROM ") >= 3
    assert "-c constraints.txt" in text
    app_stage = text[text.rindex("FROM "):]
    assert "USER 10001" in app_stage and "AS app" in app_stage
    assert 'ENTRYPOINT ["python", "-m"]' in app_stage
    ignore = (ROOT / ".dockerignore").read_text()
    assert "**/tests" in ignore


def test_dockerfile_runtime_requirements_keep_runtime_and_drop_tooling(tmp_path: Path) -> None:
    import re
    import subprocess

    text = (ROOT / "Dockerfile").read_text()
    pipeline = re.search(r"RUN (sed .*?> /tmp/runtime.txt)", text, re.S).group(1)  # type: ignore[union-attr]
    pipeline = pipeline.replace("\\\n", " ").replace("/tmp/runtime.txt", str(tmp_path / "runtime.txt"))
    subprocess.run(["bash", "-c", pipeline], cwd=ROOT, check=True)
    runtime = (tmp_path / "runtime.txt").read_text().split()
    assert "uvicorn[standard]" in runtime and "swagger-ui-py" in runtime
    assert not {"pytest", "ruff", "mypy", "kubernetes-validate", "promql-parser"} & set(runtime)
    assert not any(r.startswith("-e") for r in runtime)
    for pkg in re.findall(r"\./(libs/common|emulator|services/\w+)", text):
        assert (ROOT / pkg / "pyproject.toml").exists(), pkg
    services = set(re.findall(r"\./services/(\w+)", text))
    # spvhub web is in the image too (its Deployment is generated apart: no database, no migration)
    assert services == set(gen_k8s.SERVICES) | {gen_k8s.WEB}


def test_web_reaches_only_the_gateway_and_only_the_gateway_reaches_web() -> None:
    docs = {d["metadata"]["name"]: d for d in gen_k8s.networkpolicy_docs()}
    web, gateway = docs["web"]["spec"], docs["gateway"]["spec"]
    only_gateway = [{"podSelector": {"matchLabels": gen_k8s.selector("gateway")}}]
    assert web["policyTypes"] == ["Ingress", "Egress"]
    assert [e["to"] for e in web["egress"]] == [only_gateway]
    assert [i["from"] for i in web["ingress"]] == [only_gateway]
    assert {"podSelector": {"matchLabels": gen_k8s.selector("web")}} in gateway["egress"][0]["to"]
    # the web pods fall under the default deny (and the DNS allowance)
    assert "web" in docs["default-deny"]["spec"]["podSelector"]["matchExpressions"][0]["values"]
    deployment = next(d for d in gen_k8s.web_docs() if d["kind"] == "Deployment")
    env = {e["name"] for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert not any(k.startswith(("SPVHUB_PG_", "SPVHUB_KAFKA", "SPVHUB_S3_")) for k in env)


def test_the_gateway_image_and_the_web_trust_the_same_pod_network(monkeypatch: pytest.MonkeyPatch) -> None:
    # the web names the person to the gateway, which believes it only from these ranges (baked into its image)
    assert validate_k8s.gateway_image_trusted_proxies()
    monkeypatch.setattr(validate_k8s, "gateway_image_trusted_proxies", lambda: ["127.0.0.1/32"])
    problems = validate_k8s.validate(K8S, None, verbose=False, targets=["base"])
    assert any("the gateway image trusts 127.0.0.1/32" in p for p in problems), problems
