"""Generates the repetitive Kubernetes manifests from the code, so they cannot drift from it:
per-service workloads (secret references from each Settings class), the Ingress (from the gateway route
table), NetworkPolicies, Kafka topics (from the event catalogue) and the databases.

    python tools/gen_k8s.py           # rewrite the generated files under deploy/k8s
    python tools/gen_k8s.py --check   # exit 1 when the committed files differ from what the code generates
"""
from __future__ import annotations

import argparse
import difflib
import importlib
import sys
from pathlib import Path
from typing import Any

import yaml
from pydantic import SecretStr
from spvhub_devtools.gateway_conf import (
    BODY_LIMITS,
    RATE_LIMITS,
    RATE_ZONES,
    SERVICES,
    WEB_UPLOAD_MAX,
    routes,
    web_routes,
)

ROOT = Path(__file__).resolve().parents[1]
K8S = ROOT / "deploy" / "k8s"
PART_OF = "spvhub"
IMAGE = "spvhub"
GATEWAY_IMAGE = "spvhub-gateway"
HTTP_PORT = 8000
KAFKA_CLUSTER = "spvhub-kafka"
PG_CLUSTER = "spvhub-pg"
OBJECTS = "spvhub-objects"
EXTRA_DATABASES = ("anaf_budget",)  # the shared ANAF call budget (spvhub_common.anaf.budget)
# Services that call ANAF (or the public registry) over the internet; the others never leave the cluster
# except notifier, which talks SMTP, and webhooks, which posts to integrators' receivers.
INTERNET_HTTPS = {"auth", "portfolio", "efactura", "etransport"}

# Secret references. Every SecretStr field of a service's Settings is a secret; these fields are too, or
# come from a shared secret. Key names: the field name with dashes.
SHARED_SECRETS: dict[str, tuple[str, str]] = {
    "pg_user": ("spvhub-{service}-db", "username"),  # CNPG managed role (basic-auth secret)
    "pg_password": ("spvhub-{service}-db", "password"),
    "s3_access_key": ("spvhub-s3", "access-key"),
    "s3_secret_key": ("spvhub-s3", "secret-key"),
    "service_token": ("spvhub-service-token", "token"),
    "pii_secret": ("spvhub-pii", "secret"),
}
# Not secret in code, but per installation (token_key_active names a key of the token_key_spec secret).
EXTRA_SECRET_FIELDS = {"anaf_client_id", "smtp_username", "token_key_active"}


def labels(name: str, component: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": name, "app.kubernetes.io/part-of": PART_OF,
            "app.kubernetes.io/component": component}


def selector(name: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": name, "app.kubernetes.io/part-of": PART_OF}


def settings_class(service: str) -> Any:
    return importlib.import_module(f"spvhub_{service}.settings").Settings


def secret_env(service: str) -> list[dict[str, Any]]:
    env = []
    for field, info in sorted(settings_class(service).model_fields.items()):
        if field in SHARED_SECRETS:
            name, key = SHARED_SECRETS[field]
            name = name.format(service=service)
        elif info.annotation is SecretStr or field in EXTRA_SECRET_FIELDS:
            name, key = f"spvhub-{service}", field.replace("_", "-")
        else:
            continue
        env.append({"name": f"SPVHUB_{field.upper()}",
                    "valueFrom": {"secretKeyRef": {"name": name, "key": key}}})
    return env


POD_SECURITY = {"runAsNonRoot": True, "runAsUser": 10001, "runAsGroup": 10001, "fsGroup": 10001,
                "seccompProfile": {"type": "RuntimeDefault"}}
CONTAINER_SECURITY = {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True, "runAsNonRoot": True,
                      "privileged": False, "capabilities": {"drop": ["ALL"]},
                      "seccompProfile": {"type": "RuntimeDefault"}}


def app_container(service: str, args: list[str]) -> dict[str, Any]:
    return {
        "name": service,
        "image": IMAGE,
        "imagePullPolicy": "IfNotPresent",
        "args": args,
        "envFrom": [{"configMapRef": {"name": "spvhub-config"}}],
        "env": [{"name": "SPVHUB_SERVICE_NAME", "value": service}] + secret_env(service),
        "securityContext": CONTAINER_SECURITY,
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
    }


def service_docs(service: str) -> list[dict[str, Any]]:
    lab = labels(service, "api")
    container = app_container(service, [f"spvhub_{service}"])
    container.update({
        "ports": [{"name": "http", "containerPort": HTTP_PORT, "protocol": "TCP"}],
        "startupProbe": {"httpGet": {"path": "/health/live", "port": "http"}, "periodSeconds": 2,
                         "failureThreshold": 30},
        "livenessProbe": {"httpGet": {"path": "/health/live", "port": "http"}, "periodSeconds": 15,
                          "timeoutSeconds": 3, "failureThreshold": 4},
        "readinessProbe": {"httpGet": {"path": "/health/ready", "port": "http"}, "periodSeconds": 10,
                           "timeoutSeconds": 3, "failureThreshold": 3},
        "resources": {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"cpu": "1", "memory": "768Mi"}},
    })
    pod_spec = {
        "serviceAccountName": service,
        "automountServiceAccountToken": False,
        "securityContext": POD_SECURITY,
        "terminationGracePeriodSeconds": 30,
        "topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "kubernetes.io/hostname",
                                       "whenUnsatisfiable": "ScheduleAnyway",
                                       "labelSelector": {"matchLabels": selector(service)}}],
        "containers": [container],
        "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": "256Mi"}}],
    }
    migrate = app_container(service, [f"spvhub_{service}", "migrate"])
    migrate["name"] = "migrate"
    migrate["resources"] = {"requests": {"cpu": "50m", "memory": "128Mi"}, "limits": {"cpu": "500m", "memory": "512Mi"}}
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": service, "labels": lab},
         "automountServiceAccountToken": False},
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": service, "labels": lab},
         "spec": {"replicas": 2, "revisionHistoryLimit": 5, "selector": {"matchLabels": selector(service)},
                  "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
                  "template": {"metadata": {"labels": lab, "annotations": {
                      "prometheus.io/scrape": "true", "prometheus.io/port": str(HTTP_PORT),
                      "prometheus.io/path": "/metrics"}}, "spec": pod_spec}}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": service, "labels": lab},
         "spec": {"type": "ClusterIP", "selector": selector(service),
                  "ports": [{"name": "http", "port": HTTP_PORT, "targetPort": "http", "protocol": "TCP"}]}},
        {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
         "metadata": {"name": service, "labels": lab},
         "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": service},
                  "minReplicas": 2, "maxReplicas": 6,
                  "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {
                      "type": "Utilization", "averageUtilization": 70}}}]}},
        {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": service, "labels": lab},
         "spec": {"minAvailable": 1, "selector": {"matchLabels": selector(service)}}},
        {"apiVersion": "batch/v1", "kind": "Job",
         "metadata": {"name": f"{service}-migrate", "labels": labels(f"{service}-migrate", "migration"),
                      "annotations": {"argocd.argoproj.io/hook": "PreSync",
                                      "argocd.argoproj.io/hook-delete-policy": "BeforeHookCreation"}},
         "spec": {"backoffLimit": 3, "ttlSecondsAfterFinished": 3600, "activeDeadlineSeconds": 900,
                  "template": {"metadata": {"labels": labels(f"{service}-migrate", "migration")},
                               "spec": {"restartPolicy": "Never", "serviceAccountName": service,
                                        "automountServiceAccountToken": False, "securityContext": POD_SECURITY,
                                        "containers": [migrate],
                                        "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}}]}}}},
    ]


WEB = "web"
# spvhub web's own settings (prefix SPVHUB_WEB_); the shared env, host, port and log level come from spvhub-config.
WEB_ENV = [
    {"name": "SPVHUB_SERVICE_NAME", "value": WEB},
    {"name": "SPVHUB_WEB_GATEWAY_URL", "value": "http://gateway:8080"},
    # where people reach it (https there makes the session cookie Secure): the Ingress host, set per overlay
    {"name": "SPVHUB_WEB_PUBLIC_URL", "valueFrom": {"configMapKeyRef": {"name": "spvhub-config",
                                                                         "key": "SPVHUB_PUBLIC_BASE_URL"}}},
    {"name": "SPVHUB_WEB_SESSION_KEY", "valueFrom": {"secretKeyRef": {"name": "spvhub-web", "key": "session-key"}}},
]


def web_docs() -> list[dict[str, Any]]:
    """spvhub web: the screens people use. No database, no Kafka, no migration; it reaches only the gateway."""
    lab = labels(WEB, "web")
    container = {
        "name": WEB, "image": IMAGE, "imagePullPolicy": "IfNotPresent", "args": ["spvhub_web"],
        "envFrom": [{"configMapRef": {"name": "spvhub-config"}}], "env": WEB_ENV,
        "securityContext": CONTAINER_SECURITY,
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
        "ports": [{"name": "http", "containerPort": HTTP_PORT, "protocol": "TCP"}],
        "startupProbe": {"httpGet": {"path": "/health/live", "port": "http"}, "periodSeconds": 2,
                         "failureThreshold": 30},
        "livenessProbe": {"httpGet": {"path": "/health/live", "port": "http"}, "periodSeconds": 15,
                          "timeoutSeconds": 3, "failureThreshold": 4},
        # ready once the gateway answers (every page goes through it)
        "readinessProbe": {"httpGet": {"path": "/health/ready", "port": "http"}, "periodSeconds": 10,
                           "timeoutSeconds": 5, "failureThreshold": 3},
        "resources": {"requests": {"cpu": "50m", "memory": "128Mi"}, "limits": {"cpu": "1", "memory": "384Mi"}},
    }
    pod_spec = {
        "serviceAccountName": WEB, "automountServiceAccountToken": False, "securityContext": POD_SECURITY,
        "terminationGracePeriodSeconds": 30,
        "topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "kubernetes.io/hostname",
                                       "whenUnsatisfiable": "ScheduleAnyway",
                                       "labelSelector": {"matchLabels": selector(WEB)}}],
        "containers": [container],
        "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}}],
    }
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": WEB, "labels": lab},
         "automountServiceAccountToken": False},
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": WEB, "labels": lab},
         "spec": {"replicas": 2, "revisionHistoryLimit": 5, "selector": {"matchLabels": selector(WEB)},
                  "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
                  "template": {"metadata": {"labels": lab}, "spec": pod_spec}}},
        # named `web` on port 8000: the gateway image's nginx.conf resolves the upstream `web:8000`
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": WEB, "labels": lab},
         "spec": {"type": "ClusterIP", "selector": selector(WEB),
                  "ports": [{"name": "http", "port": HTTP_PORT, "targetPort": "http", "protocol": "TCP"}]}},
        {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": {"name": WEB, "labels": lab},
         "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": WEB},
                  "minReplicas": 2, "maxReplicas": 4,
                  "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {
                      "type": "Utilization", "averageUtilization": 70}}}]}},
        {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": WEB, "labels": lab},
         "spec": {"minAvailable": 1, "selector": {"matchLabels": selector(WEB)}}},
    ]


def gateway_docs() -> list[dict[str, Any]]:
    """The gateway image in the cluster serves /health (all services), /openapi.json and /docs."""
    name = "gateway"
    lab = labels(name, "gateway")
    sec = dict(CONTAINER_SECURITY, runAsUser=101, runAsGroup=101)
    container = {
        "name": name, "image": GATEWAY_IMAGE, "imagePullPolicy": "IfNotPresent",
        # the config with spvhub web's upstream (the Service `web`, generated above)
        "command": ["nginx", "-e", "stderr", "-p", "/etc/spvhub-gateway", "-c", "/etc/spvhub-gateway/nginx.conf",
                    "-g", "daemon off;"],
        "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"}],
        "livenessProbe": {"httpGet": {"path": "/health/live", "port": "http"}, "periodSeconds": 15},
        "readinessProbe": {"httpGet": {"path": "/health/live", "port": "http"}, "periodSeconds": 10},
        "resources": {"requests": {"cpu": "20m", "memory": "32Mi"}, "limits": {"cpu": "500m", "memory": "128Mi"}},
        "securityContext": sec,
        "volumeMounts": [{"name": "tmp", "mountPath": "/etc/spvhub-gateway/tmp"}],
    }
    pod_security = dict(POD_SECURITY, runAsUser=101, runAsGroup=101, fsGroup=101)
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name, "labels": lab},
         "automountServiceAccountToken": False},
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "labels": lab},
         "spec": {"replicas": 2, "revisionHistoryLimit": 5, "selector": {"matchLabels": selector(name)},
                  "template": {"metadata": {"labels": lab}, "spec": {
                      "serviceAccountName": name, "automountServiceAccountToken": False,
                      "securityContext": pod_security, "containers": [container],
                      "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}}]}}}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "labels": lab},
         "spec": {"type": "ClusterIP", "selector": selector(name),
                  "ports": [{"name": "http", "port": 8080, "targetPort": "http", "protocol": "TCP"}]}},
        {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": name, "labels": lab},
         "spec": {"minAvailable": 1, "selector": {"matchLabels": selector(name)}}},
    ]


INGRESS_ANNOTATIONS = {
    # the largest body any endpoint takes (gateway_conf.BODY_LIMITS); each service refuses more for its endpoint
    "nginx.ingress.kubernetes.io/proxy-body-size": f"{max(b.max_bytes for b in BODY_LIMITS) // 1024}k",
    "nginx.ingress.kubernetes.io/proxy-read-timeout": "120",
}


def _rpm(zone: str) -> int:
    rate = RATE_ZONES[zone][0]
    n, unit = rate.removesuffix("r/m").removesuffix("r/s"), rate[-1]
    return int(n) * (60 if unit == "s" else 1)


def ingress_docs() -> list[dict[str, Any]]:
    """The gateway's route table as Ingresses (ingress-nginx): one for the routes, one per rate zone for the
    public endpoints (longest path wins), one for the gateway's own pages. Hosts are set by the overlays."""
    def path(p: str, svc: str, port: int = HTTP_PORT, exact: bool = False) -> dict[str, Any]:
        return {"path": p, "pathType": "Exact" if exact else "Prefix",
                "backend": {"service": {"name": svc, "port": {"number": port}}}}

    def ingress(name: str, paths: list[dict[str, Any]], extra: dict[str, str] | None = None) -> dict[str, Any]:
        return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
                "metadata": {"name": name, "labels": labels(name, "ingress"),
                             "annotations": dict(INGRESS_ANNOTATIONS, **(extra or {}))},
                "spec": {"ingressClassName": "nginx", "rules": [{"host": "spvhub.example.ro",
                                                                  "http": {"paths": paths}}]}}

    docs = [ingress("spvhub-api", [path(r.path, r.service, exact=r.exact) for r in routes()])]
    for zone in RATE_ZONES:
        limited = [path(rl.path, rl.service) for rl in RATE_LIMITS if rl.zone == zone]
        if limited:
            docs.append(ingress(f"spvhub-{zone}", limited, {
                "nginx.ingress.kubernetes.io/limit-rpm": str(_rpm(zone)),
                "nginx.ingress.kubernetes.io/limit-burst-multiplier": "1"}))
    # spvhub web's screens (`/`, `/join`, `/companies/...`) through the gateway, which routes them to web exactly as
    # under ./dev; its invoice upload form takes up to WEB_UPLOAD_MAX
    docs.append(ingress("spvhub-web", [path(r.path, "gateway", 8080, exact=r.exact) for r in web_routes()],
                        {"nginx.ingress.kubernetes.io/proxy-body-size": WEB_UPLOAD_MAX}))
    docs.append(ingress("spvhub-gateway", [path("/health", "gateway", 8080, exact=True),
                                           path("/openapi.json", "gateway", 8080, exact=True),
                                           path("/docs", "gateway", 8080)]))
    return docs


def _pods(name: str) -> dict[str, Any]:
    return {"podSelector": {"matchLabels": selector(name)}}


def networkpolicy_docs() -> list[dict[str, Any]]:
    """Default deny, then exactly the flows the architecture needs (same namespace for the infrastructure)."""
    def np(name: str, spec: dict[str, Any]) -> dict[str, Any]:
        return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                "metadata": {"name": name, "labels": labels(name, "network-policy")}, "spec": spec}

    dns = {"to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                   "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}],
           "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]}
    ingress_ctrl = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}}
    monitoring = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}
    any_app = {"podSelector": {"matchLabels": {"app.kubernetes.io/part-of": PART_OF,
                                               "app.kubernetes.io/component": "api"}}}
    gateway = {"podSelector": {"matchLabels": selector("gateway")}}
    web = {"podSelector": {"matchLabels": selector(WEB)}}
    public_internet = {"ipBlock": {"cidr": "0.0.0.0/0", "except": ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"]}}
    # Scoped to spvhub's own workloads: the operators (Strimzi, CNPG) manage their pods' policies themselves.
    ours = {"matchExpressions": [{"key": "app.kubernetes.io/component", "operator": "In",
                                  "values": ["api", "gateway", "migration", "web"]}]}
    docs = [
        np("default-deny", {"podSelector": ours, "policyTypes": ["Ingress", "Egress"]}),
        np("allow-dns", {"podSelector": ours, "policyTypes": ["Egress"], "egress": [dns]}),
        np("gateway", {"podSelector": {"matchLabels": selector("gateway")}, "policyTypes": ["Ingress", "Egress"],
                       "ingress": [{"from": [ingress_ctrl, web], "ports": [{"protocol": "TCP", "port": 8080}]}],
                       "egress": [{"to": [any_app, web], "ports": [{"protocol": "TCP", "port": HTTP_PORT}]}]}),
        # spvhub web: from the gateway only, and out to the gateway only (the public API; no database, no Kafka)
        np(WEB, {"podSelector": {"matchLabels": selector(WEB)}, "policyTypes": ["Ingress", "Egress"],
                 "ingress": [{"from": [gateway], "ports": [{"protocol": "TCP", "port": HTTP_PORT}]}],
                 "egress": [{"to": [gateway], "ports": [{"protocol": "TCP", "port": 8080}]}]}),
    ]
    for s in SERVICES:
        egress = [
            {"to": [any_app], "ports": [{"protocol": "TCP", "port": HTTP_PORT}]},
            {"to": [{"podSelector": {"matchLabels": {"strimzi.io/cluster": KAFKA_CLUSTER}}}],
             "ports": [{"protocol": "TCP", "port": 9092}]},
            {"to": [{"podSelector": {"matchLabels": {"cnpg.io/cluster": PG_CLUSTER}}}],
             "ports": [{"protocol": "TCP", "port": 5432}]},
            {"to": [{"podSelector": {"matchLabels": selector(OBJECTS)}}], "ports": [{"protocol": "TCP", "port": 9000}]},
            {"to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "observability"}}}],
             "ports": [{"protocol": "TCP", "port": 4318}]},
        ]
        if s in INTERNET_HTTPS:
            egress.append({"to": [public_internet], "ports": [{"protocol": "TCP", "port": 443}]})
        if s == "notifier":
            egress.append({"to": [public_internet], "ports": [{"protocol": "TCP", "port": p} for p in (25, 465, 587)]})
        if s == "webhooks":
            # integrators' receivers: public addresses on any port (the service itself refuses private, loopback
            # and link-local targets; the ipBlock keeps the cluster's private ranges out as well)
            egress.append({"to": [public_internet]})
        docs.append(np(s, {
            "podSelector": {"matchLabels": selector(s)}, "policyTypes": ["Ingress", "Egress"],
            "ingress": [{"from": [ingress_ctrl, gateway, any_app, monitoring],
                         "ports": [{"protocol": "TCP", "port": HTTP_PORT}]}],
            "egress": egress}))
        docs.append(np(f"{s}-migrate", {
            "podSelector": {"matchLabels": selector(f"{s}-migrate")}, "policyTypes": ["Ingress", "Egress"],
            "ingress": [],
            "egress": [{"to": [{"podSelector": {"matchLabels": {"cnpg.io/cluster": PG_CLUSTER}}}],
                        "ports": [{"protocol": "TCP", "port": 5432}]}]}))
    return docs


def topic_docs() -> list[dict[str, Any]]:
    """A KafkaTopic for every catalogue topic, and a dead-letter topic for every consumed one."""
    from spvhub_common.events import topics
    from spvhub_devtools.contracts import consumers_by_service

    consumed = {cls.topic for groups in consumers_by_service().values() for _g, routed in groups for cls in routed}
    docs = []
    for t in topics():
        docs.append(_topic(t, partitions=12, retention_ms=14 * 24 * 3600 * 1000, purpose="events"))
    for t in sorted(consumed):
        docs.append(_topic(f"{t}.dlt", partitions=1, retention_ms=90 * 24 * 3600 * 1000, purpose="dead-letters"))
    return docs


def _topic(name: str, *, partitions: int, retention_ms: int, purpose: str) -> dict[str, Any]:
    return {"apiVersion": "kafka.strimzi.io/v1beta2", "kind": "KafkaTopic",
            "metadata": {"name": name.replace(".", "-"),
                         "labels": {"strimzi.io/cluster": KAFKA_CLUSTER, "app.kubernetes.io/part-of": PART_OF,
                                    "app.kubernetes.io/component": purpose}},
            "spec": {"topicName": name, "partitions": partitions, "replicas": 3,
                     "config": {"retention.ms": retention_ms, "min.insync.replicas": 2, "cleanup.policy": "delete"}}}


def postgres_docs() -> list[dict[str, Any]]:
    """The CNPG cluster with one managed login role per service (password from the Secret
    spvhub-<service>-db, never in git), one Database per service, and the shared ANAF budget database owned
    by a group role that every ANAF-calling service belongs to."""
    cluster = {
        "apiVersion": "postgresql.cnpg.io/v1", "kind": "Cluster",
        "metadata": {"name": PG_CLUSTER, "labels": {"app.kubernetes.io/part-of": PART_OF}},
        "spec": {
            "instances": 3,
            "imageName": "ghcr.io/cloudnative-pg/postgresql:15",
            "primaryUpdateStrategy": "unsupervised",
            "storage": {"size": "50Gi"},
            "walStorage": {"size": "10Gi"},
            "postgresql": {"parameters": {"max_connections": "400", "shared_buffers": "512MB"}},
            "bootstrap": {"initdb": {"database": "spvhub_bootstrap", "owner": "spvhub_admin"}},
            "enableSuperuserAccess": False,
            "managed": {"roles": managed_roles()},
            "monitoring": {"enablePodMonitor": True},
            "resources": {"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"memory": "2Gi"}},
        },
    }
    docs: list[dict[str, Any]] = [cluster]
    for s in [*SERVICES, *EXTRA_DATABASES]:
        owner = s if s in SERVICES else "spvhub_anaf_budget_users"
        docs.append({"apiVersion": "postgresql.cnpg.io/v1", "kind": "Database",
                     "metadata": {"name": f"spvhub-{s.replace('_', '-')}",
                                  "labels": {"app.kubernetes.io/part-of": PART_OF}},
                     "spec": {"name": f"spvhub_{s}", "owner": owner, "cluster": {"name": PG_CLUSTER},
                              "ensure": "present"}})
    return docs


def managed_roles() -> list[dict[str, Any]]:
    return [{"name": s, "ensure": "present", "login": True, "passwordSecret": {"name": f"spvhub-{s}-db"},
             "inRoles": ["spvhub_anaf_budget_users"] if s in INTERNET_HTTPS else []} for s in SERVICES] + [
        {"name": "spvhub_anaf_budget_users", "ensure": "present", "login": False}]


def monitoring_docs() -> list[dict[str, Any]]:
    """Prometheus Operator objects: a PodMonitor for every spvhub API pod and the alert rules of
    deploy/observability/prometheus-rules.yaml as a PrometheusRule."""
    rules = yaml.safe_load((ROOT / "deploy" / "observability" / "prometheus-rules.yaml").read_text())
    return [
        {"apiVersion": "monitoring.coreos.com/v1", "kind": "PodMonitor",
         "metadata": {"name": "spvhub", "labels": {"app.kubernetes.io/part-of": PART_OF}},
         "spec": {"selector": {"matchLabels": {"app.kubernetes.io/part-of": PART_OF,
                                               "app.kubernetes.io/component": "api"}},
                  "podMetricsEndpoints": [{"port": "http", "path": "/metrics", "interval": "30s"}]}},
        {"apiVersion": "monitoring.coreos.com/v1", "kind": "PrometheusRule",
         "metadata": {"name": "spvhub", "labels": {"app.kubernetes.io/part-of": PART_OF}},
         "spec": {"groups": rules["groups"]}},
    ]


HEADER = "# GENERATED by tools/gen_k8s.py from the code ({what}); do not edit. Regenerate: python tools/gen_k8s.py\n"


class _NoAliases(yaml.SafeDumper):
    def ignore_aliases(self, data: Any) -> bool:
        return True


def dump(docs: list[dict[str, Any]], what: str) -> str:
    return HEADER.format(what=what) + yaml.dump_all(docs, Dumper=_NoAliases, sort_keys=False, width=120)


def generate() -> dict[Path, str]:
    out: dict[Path, str] = {}
    for s in SERVICES:
        out[K8S / "base" / "generated" / f"{s}.yaml"] = dump(service_docs(s), f"spvhub_{s}.settings")
    out[K8S / "base" / "generated" / "web.yaml"] = dump(web_docs(), "spvhub_web.settings")
    out[K8S / "base" / "generated" / "gateway.yaml"] = dump(gateway_docs(), "the gateway image")
    out[K8S / "base" / "generated" / "ingress.yaml"] = dump(ingress_docs(), "spvhub_devtools.gateway_conf routes")
    out[K8S / "base" / "generated" / "networkpolicies.yaml"] = dump(networkpolicy_docs(), "the service list")
    out[K8S / "infrastructure" / "generated" / "topics.yaml"] = dump(topic_docs(), "spvhub_common.events")
    out[K8S / "infrastructure" / "generated" / "postgres.yaml"] = dump(postgres_docs(), "the service list")
    out[K8S / "monitoring" / "generated" / "monitoring.yaml"] = dump(
        monitoring_docs(), "deploy/observability/prometheus-rules.yaml")
    return out


def check() -> list[str]:
    problems = []
    for path, text in generate().items():
        old = path.read_text() if path.exists() else ""
        if old != text:
            diff = "".join(difflib.unified_diff(old.splitlines(True), text.splitlines(True), str(path),
                                                "generated", n=1))
            problems.append(f"{path.relative_to(ROOT)} is stale:\n{diff[:3000]}")
    return problems


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--check", action="store_true")
    a = p.parse_args(argv)
    if a.check:
        problems = check()
        for prob in problems:
            print(prob, file=sys.stderr)
        if problems:
            print("run: python tools/gen_k8s.py   and commit deploy/k8s", file=sys.stderr)
            return 1
        print("deploy/k8s generated files match the code")
        return 0
    for path, text in generate().items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        print(f"wrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
