"""Loaders shared by tests/knative: manifests, schemas, the build matrix, Settings' variables.

Import as `from tests.knative import support`.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator, Mapping
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from shared.config import Settings

ROOT = Path(__file__).resolve().parents[2]
KNATIVE = ROOT / "knative"
SCHEMAS = KNATIVE / "schemas"
DOCKER = ROOT / "docker"
COMPOSE_FILE = ROOT / "docker-compose.yml"
COMPOSE_SCHEMA = Path(__file__).resolve().parent / "schemas" / "compose-spec.json"
ENV_EXAMPLE = ROOT / ".env.example"
NAMESPACE = "proteus"
K8S_VERSION = "1.32"

# CRD kinds -> the strict schema copied into knative/schemas/ (sources in its README).
CRD_SCHEMAS: dict[tuple[str, str], str] = {
    ("serving.knative.dev/v1", "Service"): "knative-serving-service_v1.strict.json",
    ("sources.knative.dev/v1alpha1", "RedisStreamSource"): "knative-redis-redisstreamsource_v1alpha1.strict.json",
    ("keda.sh/v1alpha1", "ScaledObject"): "keda-scaledobject_v1alpha1.strict.json",
    ("keda.sh/v1alpha1", "TriggerAuthentication"): "keda-triggerauthentication_v1alpha1.strict.json",
    ("monitoring.coreos.com/v1", "PodMonitor"): "prometheus-operator-podmonitor_v1.strict.json",
    ("monitoring.coreos.com/v1", "PrometheusRule"): "prometheus-operator-prometheusrule_v1.strict.json",
}
CLUSTER_SCOPED = {"Namespace"}


def manifest_files() -> list[Path]:
    return sorted(KNATIVE.rglob("*.yaml"))


_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.load_all(path.read_text(), Loader=_Loader) if doc]


@cache
def _all_documents() -> tuple[tuple[Path, dict[str, Any]], ...]:
    return tuple((path, doc) for path in manifest_files() for doc in documents(path))


def all_documents() -> list[tuple[Path, dict[str, Any]]]:
    """(file, document) for every manifest under knative/ (fresh copies: callers may mutate)."""
    return copy.deepcopy(list(_all_documents()))


def docs_of(kind: str, api_version: str | None = None, under: str | None = None) -> list[tuple[Path, dict[str, Any]]]:
    found = []
    for path, doc in all_documents():
        if doc["kind"] != kind or (api_version and doc["apiVersion"] != api_version):
            continue
        if under and not str(path.relative_to(KNATIVE)).startswith(under):
            continue
        found.append((path, doc))
    return found


def one(kind: str, name: str, api_version: str | None = None) -> dict[str, Any]:
    matches = [doc for _, doc in docs_of(kind, api_version) if doc["metadata"]["name"] == name]
    assert len(matches) == 1, f"expected one {kind} named {name}, found {len(matches)}"
    return matches[0]


def knative_services() -> dict[str, tuple[Path, dict[str, Any]]]:
    return {doc["metadata"]["name"]: (path, doc) for path, doc in docs_of("Service", "serving.knative.dev/v1")}


@cache
def crd_schema(file_name: str) -> dict[str, Any]:
    return json.loads((SCHEMAS / file_name).read_text())


def configmap() -> dict[str, str]:
    return dict(one("ConfigMap", "proteus-config")["data"])


def secret_template(name: str = "proteus-secrets") -> dict[str, str]:
    return dict(one("Secret", name)["stringData"])


def pod_spec(doc: dict[str, Any]) -> dict[str, Any]:
    """The pod spec of a Deployment, StatefulSet, Job or Knative Service."""
    return doc["spec"]["template"]["spec"]


def containers(doc: dict[str, Any]) -> list[dict[str, Any]]:
    spec = pod_spec(doc)
    return list(spec.get("initContainers", [])) + list(spec["containers"])


def workloads() -> Iterator[tuple[Path, dict[str, Any]]]:
    for path, doc in all_documents():
        if doc["kind"] in {"Deployment", "StatefulSet", "Job"} or (
            doc["kind"] == "Service" and doc["apiVersion"] == "serving.knative.dev/v1"
        ):
            yield path, doc


def ksvc_name(function: str) -> str:
    """Knative Service name of a function (Kubernetes names have no underscores)."""
    return function.replace("_", "-")


@cache
def images() -> dict[str, dict[str, Any]]:
    return yaml.safe_load((DOCKER / "images.yaml").read_text())["images"]


class _Recorder(dict):
    """A mapping that notes every name read through .get() (all Settings.from_env uses)."""

    def __init__(self, base: Mapping[str, str]) -> None:
        super().__init__(base)
        self.read: list[str] = []

    def get(self, key: str, default: Any = None) -> Any:  # type: ignore[override]
        self.read.append(key)
        return super().get(key, default)


@cache
def settings_variables() -> frozenset[str]:
    """Every environment variable Settings.from_env reads, found by running it."""
    recorder = _Recorder({"PROTEUS_ENV": "test", "JWT_SECRET": "x" * 48})
    Settings.from_env(recorder)
    return frozenset(recorder.read)


def settings_from(environ: Mapping[str, str]) -> Settings:
    return Settings.from_env(dict(environ))


def duration_seconds(value: str) -> int:
    match = re.fullmatch(r"(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?", value.strip())
    if not match or not any(match.groups()):
        raise ValueError(f"not a duration: {value!r}")
    hours, minutes, seconds = (int(g or 0) for g in match.groups())
    return hours * 3600 + minutes * 60 + seconds


def env_example() -> list[tuple[str, str]]:
    """(name, value) of every active assignment in .env.example, in order."""
    pairs = []
    for line in ENV_EXAMPLE.read_text().splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        name, sep, value = stripped.partition("=")
        assert sep, f".env.example: not NAME=value: {line!r}"
        pairs.append((name.strip(), value))
    return pairs


def compose() -> dict[str, Any]:
    return yaml.load(COMPOSE_FILE.read_text(), Loader=_Loader)
