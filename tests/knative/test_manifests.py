"""Every manifest under knative/ validates against its kind's schema, and follows the
rules the schemas cannot express (Knative limits, GPU scheduling, probes vs. progress
deadline, pinned images, non-root pods). The data stores, the placeholders-only Secret and
the settings the manifests carry: test_data_stores_and_secrets.py."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import kubernetes_validate
import pytest

from shared.gunicorn_base import gunicorn_config
from shared.routing import FUNCTION_PORTS, SYNCHRONOUS_FUNCTIONS
from tests.knative import support

DOCS = support.all_documents()
KSVCS = support.knative_services()
AUTOSCALING = (
    "autoscaling.knative.dev/min-scale",
    "autoscaling.knative.dev/max-scale",
    "autoscaling.knative.dev/target",
    "autoscaling.knative.dev/scale-to-zero-pod-retention-period",
)
KNATIVE_MAX_TIMEOUT_S = 600  # config-defaults max-revision-timeout-seconds, default


def _id(item: tuple[Path, dict[str, Any]]) -> str:
    path, doc = item
    return f"{path.relative_to(support.KNATIVE)}:{doc['kind']}/{doc['metadata']['name']}"


def validation_errors(doc: dict[str, Any]) -> list[str]:
    """Schema errors of one manifest: CRD kinds against knative/schemas, core kinds with
    kubernetes-validate (Kubernetes 1.32, strict, offline)."""
    key = (doc.get("apiVersion"), doc.get("kind"))
    if key in support.CRD_SCHEMAS:
        validator = jsonschema.Draft7Validator(support.crd_schema(support.CRD_SCHEMAS[key]))
        return [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(doc)]
    try:
        kubernetes_validate.validate(doc, support.K8S_VERSION, strict=True)
    except kubernetes_validate.ValidationError as exc:
        return [f"{list(exc.absolute_path)}: {exc.message}"]
    except kubernetes_validate.SchemaNotFoundError as exc:
        return [f"no schema: {exc.message}"]
    return []


def test_there_are_manifests() -> None:
    kinds = {doc["kind"] for _, doc in DOCS}
    assert {"Namespace", "Secret", "ConfigMap", "StatefulSet", "Service", "Job", "Ingress", "Deployment"} <= kinds
    assert {"RedisStreamSource", "ScaledObject", "TriggerAuthentication"} <= kinds
    assert set(KSVCS) == {support.ksvc_name(f) for f in FUNCTION_PORTS} | {"gateway"}


@pytest.mark.parametrize("item", DOCS, ids=[_id(i) for i in DOCS])
def test_manifest_validates_against_its_schema(item: tuple[Path, dict[str, Any]]) -> None:
    assert validation_errors(item[1]) == []


@pytest.mark.parametrize(
    "name, mutate",
    [
        ("typo in a Deployment", lambda d: d["spec"]["template"]["spec"].update(restartPolicyy="Always")),
        ("typo in a container", lambda d: d["spec"]["template"]["spec"]["containers"][0].update(imagee="x")),
    ],
)
def test_core_validation_is_strict(name: str, mutate: Any) -> None:
    doc = copy.deepcopy(support.one("Deployment", "runner-enqueue"))
    assert validation_errors(doc) == []
    mutate(doc)
    assert validation_errors(doc), name


@pytest.mark.parametrize(
    "kind, name, mutate",
    [
        ("Service", "weave", lambda d: d["spec"]["template"]["spec"].update(containerConcurency=1)),
        ("Service", "weave", lambda d: d["spec"]["template"]["spec"].update(timeoutSeconds="600")),
        ("RedisStreamSource", "stream-weave", lambda d: d["spec"].update(consumerGroup="weave")),
        ("ScaledObject", "weave-worker", lambda d: d["spec"].update(minReplicas=0)),
    ],
)
def test_crd_validation_is_strict(kind: str, name: str, mutate: Any) -> None:
    doc = copy.deepcopy(support.one(kind, name))
    assert validation_errors(doc) == []
    mutate(doc)
    assert validation_errors(doc)


def test_unknown_kinds_are_not_waved_through() -> None:
    assert validation_errors({"apiVersion": "example.com/v1", "kind": "Gadget", "metadata": {"name": "x"}})


def test_everything_is_in_the_proteus_namespace() -> None:
    for path, doc in DOCS:
        if doc["kind"] in support.CLUSTER_SCOPED:
            assert doc["metadata"]["name"] == support.NAMESPACE
        else:
            assert doc["metadata"].get("namespace") == support.NAMESPACE, _id((path, doc))


# --------------------------------------------------------------------------- images


EXACT_VERSION = re.compile(r"(@sha256:[0-9a-f]{64}$)|(:[^:@/]*\d+\.\d+[^:@/]*$)|(:RELEASE\.[^:@/]+$)")


@pytest.mark.parametrize("item", list(support.workloads()), ids=[_id(i) for i in support.workloads()])
def test_images_are_project_images_or_pinned(item: tuple[Path, dict[str, Any]]) -> None:
    for container in support.containers(item[1]):
        image = container["image"]
        if image.startswith("proteus-"):
            name, _, tag = image.rpartition(":")
            assert tag == "dev", f"{image}: project images are written as proteus-<name>:dev"
            assert name in support.images(), f"{image} is not built by docker/images.yaml"
        else:
            assert EXACT_VERSION.search(image), f"{image}: pin an exact version or a digest"


# --------------------------------------------------------------------------- pods


@pytest.mark.parametrize("item", list(support.workloads()), ids=[_id(i) for i in support.workloads()])
def test_pods_run_as_non_root_without_privilege_escalation(item: tuple[Path, dict[str, Any]]) -> None:
    pod = support.pod_spec(item[1])
    for container in support.containers(item[1]):
        context = container.get("securityContext", {})
        non_root = context.get("runAsNonRoot", pod.get("securityContext", {}).get("runAsNonRoot"))
        assert non_root is True, f"{container['name']}: runAsNonRoot"
        assert context.get("allowPrivilegeEscalation") is False, f"{container['name']}: allowPrivilegeEscalation"
        assert context.get("capabilities", {}).get("drop") == ["ALL"], f"{container['name']}: drop ALL"


@pytest.mark.parametrize("item", list(support.workloads()), ids=[_id(i) for i in support.workloads()])
def test_referenced_configmaps_secrets_and_claims_exist(item: tuple[Path, dict[str, Any]]) -> None:
    configmaps = {doc["metadata"]["name"] for _, doc in support.docs_of("ConfigMap")}
    secrets = {doc["metadata"]["name"] for _, doc in support.docs_of("Secret")} | {"proteus-hf"}
    claims = {doc["metadata"]["name"] for _, doc in support.docs_of("PersistentVolumeClaim")}
    pod = support.pod_spec(item[1])
    for container in support.containers(item[1]):
        for source in container.get("envFrom", []):
            if "configMapRef" in source:
                assert source["configMapRef"]["name"] in configmaps
            if "secretRef" in source:
                assert source["secretRef"]["name"] in secrets
        for env in container.get("env", []):
            ref = env.get("valueFrom", {}).get("secretKeyRef")
            if ref and not ref.get("optional"):
                assert ref["name"] in secrets
                assert ref["key"] in support.secret_template(ref["name"])
    for volume in pod.get("volumes", []):
        if "persistentVolumeClaim" in volume:
            assert volume["persistentVolumeClaim"]["claimName"] in claims


# --------------------------------------------------------------------------- Knative


def _annotations(doc: dict[str, Any]) -> dict[str, str]:
    return doc["spec"]["template"].get("metadata", {}).get("annotations", {})


@pytest.mark.parametrize("name", sorted(KSVCS))
def test_knative_service_scaling_and_limits(name: str) -> None:
    doc = KSVCS[name][1]
    annotations = _annotations(doc)
    spec = doc["spec"]["template"]["spec"]
    for key in AUTOSCALING:
        assert key in annotations, f"{name}: {key}"
    low = int(annotations["autoscaling.knative.dev/min-scale"])
    high = int(annotations["autoscaling.knative.dev/max-scale"])
    assert 0 <= low <= high and high >= 1
    assert float(annotations["autoscaling.knative.dev/target"]) > 0
    support.duration_seconds(annotations["autoscaling.knative.dev/scale-to-zero-pod-retention-period"])
    assert "containerConcurrency" in spec and spec["containerConcurrency"] >= 0
    assert 1 <= spec["timeoutSeconds"] <= KNATIVE_MAX_TIMEOUT_S
    if "responseStartTimeoutSeconds" in spec:
        assert 1 <= spec["responseStartTimeoutSeconds"] <= spec["timeoutSeconds"]
    if "idleTimeoutSeconds" in spec:
        assert spec["idleTimeoutSeconds"] >= 1
    if spec["containerConcurrency"]:
        assert float(annotations["autoscaling.knative.dev/target"]) <= spec["containerConcurrency"]
    container = spec["containers"][0]
    assert [p["containerPort"] for p in container["ports"]] == [8080]
    assert {"/readyz", "/healthz"} <= {container[p]["httpGet"]["path"] for p in ("readinessProbe", "livenessProbe")}
    assert doc["metadata"]["labels"].get("networking.knative.dev/visibility") == "cluster-local"
    refs = [next(iter(s.values()))["name"] for s in container["envFrom"]]
    assert refs == ["proteus-config", "proteus-secrets"]


def test_functions_scale_to_zero_and_the_gateway_does_not() -> None:
    for function in FUNCTION_PORTS:
        if function in SYNCHRONOUS_FUNCTIONS:  # upload-signing: a browser waits on it (min-scale 1, issue 11)
            continue
        assert _annotations(KSVCS[support.ksvc_name(function)][1])["autoscaling.knative.dev/min-scale"] == "0"
    gateway = KSVCS["gateway"][1]
    assert int(_annotations(gateway)["autoscaling.knative.dev/min-scale"]) >= 1
    # WebSockets: long requests, no hard concurrency cap, idle timeout above the heartbeat.
    spec = gateway["spec"]["template"]["spec"]
    assert spec["timeoutSeconds"] == KNATIVE_MAX_TIMEOUT_S
    assert spec["containerConcurrency"] == 0
    heartbeat = support.settings_from({**support.configmap(), **support.secret_template()}).ws_heartbeat_s
    assert spec["idleTimeoutSeconds"] > 2 * heartbeat


@pytest.mark.parametrize("function", sorted(FUNCTION_PORTS))
def test_container_concurrency_fits_the_functions_gunicorn(function: str) -> None:
    """containerConcurrency must not exceed what gunicorn serves at once
    (shared/gunicorn_base.py); weave and tailor keep one thread free for the probes; a
    request may not outlive gunicorn's worker timeout."""
    config = gunicorn_config(function, {})
    capacity = config["workers"] * config["threads"]
    concurrency = KSVCS[support.ksvc_name(function)][1]["spec"]["template"]["spec"]["containerConcurrency"]
    assert 1 <= concurrency <= capacity
    if function in {"weave", "tailor"}:
        assert concurrency <= config["workers"] * (config["threads"] - 1)
    # gunicorn would kill a worker whose request outlives its own timeout.
    assert KSVCS[support.ksvc_name(function)][1]["spec"]["template"]["spec"]["timeoutSeconds"] <= config["timeout"]


def test_weave_takes_one_batch_request_at_a_time() -> None:
    """runner-weave sends up to max_batch jobs as ONE batched request; weave renders one batch
    at a time, so the Service takes one request at a time and batching is configured."""
    batch = support.settings_from({**support.configmap(), **support.secret_template()}).weave_max_batch
    spec = KSVCS[support.ksvc_name("weave")][1]["spec"]["template"]["spec"]
    assert spec["containerConcurrency"] == 1 and batch > 1


def _startup_budget_s(probe: dict[str, Any]) -> int:
    """Longest time a startup probe may take before it fails (Knative's docs' formula)."""
    return probe.get("initialDelaySeconds", 0) + probe.get("failureThreshold", 3) * (
        probe.get("periodSeconds", 10) + probe.get("timeoutSeconds", 1)
    )


@pytest.mark.parametrize("name", sorted(KSVCS))
def test_startup_probe_fits_in_the_progress_deadline(name: str) -> None:
    doc = KSVCS[name][1]
    container = doc["spec"]["template"]["spec"]["containers"][0]
    if "startupProbe" not in container:
        return
    deadline = _annotations(doc).get("serving.knative.dev/progress-deadline")
    assert deadline, f"{name}: a startup probe needs serving.knative.dev/progress-deadline"
    assert support.duration_seconds(deadline) > _startup_budget_s(container["startupProbe"])


def test_weave_gets_a_gpu_node_and_time_to_load_its_model() -> None:
    doc = KSVCS["weave"][1]
    spec = doc["spec"]["template"]["spec"]
    container = spec["containers"][0]
    assert str(container["resources"]["limits"]["nvidia.com/gpu"]) == "1"
    assert spec["nodeSelector"] == {"proteus.dev/accelerator": "nvidia-gpu"}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in spec["tolerations"]
    assert container["startupProbe"]["httpGet"]["path"] == "/readyz"
    assert _startup_budget_s(container["startupProbe"]) >= 600  # a real model load on a cold node
    assert spec["timeoutSeconds"] == KNATIVE_MAX_TIMEOUT_S
    worker = support.one("Deployment", "weave-worker")
    assert support.pod_spec(worker)["nodeSelector"] == spec["nodeSelector"]
    assert support.pod_spec(worker)["tolerations"] == spec["tolerations"]


FEATURE_FLAGS = {
    "nodeSelector": "kubernetes.podspec-nodeselector",
    "tolerations": "kubernetes.podspec-tolerations",
    "persistentVolumeClaim": "kubernetes.podspec-persistent-volume-claim",
}


def test_the_feature_flags_knative_services_need_are_documented_and_enabled() -> None:
    readme = (support.KNATIVE / "README.md").read_text()
    deploy_mk = (support.KNATIVE / "deploy.mk").read_text()
    needed = set()
    for _, doc in KSVCS.values():
        spec = doc["spec"]["template"]["spec"]
        needed |= {FEATURE_FLAGS[k] for k in ("nodeSelector", "tolerations") if k in spec}
        if any("persistentVolumeClaim" in v for v in spec.get("volumes", [])):
            needed.add(FEATURE_FLAGS["persistentVolumeClaim"])
    assert needed == set(FEATURE_FLAGS.values())
    for flag in needed:
        assert f"`{flag}: enabled`" in readme
        assert f'"{flag}":"enabled"' in deploy_mk


def test_read_write_once_model_volumes_limit_replicas_to_one() -> None:
    """Linode Block Storage attaches to one node: a workload mounting a ReadWriteOnce
    claim cannot run two replicas on two GPU nodes."""
    rwo = {
        doc["metadata"]["name"]
        for _, doc in support.docs_of("PersistentVolumeClaim")
        if doc["spec"]["accessModes"] == ["ReadWriteOnce"]
    }
    for name, (_, doc) in KSVCS.items():
        if any(
            v.get("persistentVolumeClaim", {}).get("claimName") in rwo for v in support.pod_spec(doc).get("volumes", [])
        ):
            assert _annotations(doc)["autoscaling.knative.dev/max-scale"] == "1", name
    scaled = support.one("ScaledObject", "weave-worker")
    assert scaled["spec"]["maxReplicaCount"] == 1


# --------------------------------------------------------------------------- ingress


def test_gateway_ingress_terminates_tls_for_the_public_url() -> None:
    ingress = support.one("Ingress", "gateway")
    annotations = ingress["metadata"]["annotations"]
    assert annotations["cert-manager.io/cluster-issuer"]
    assert annotations["nginx.ingress.kubernetes.io/upstream-vhost"] == "gateway.proteus.svc.cluster.local"
    assert int(annotations["nginx.ingress.kubernetes.io/proxy-read-timeout"]) >= KNATIVE_MAX_TIMEOUT_S
    rule = ingress["spec"]["rules"][0]
    assert ingress["spec"]["tls"][0]["hosts"] == [rule["host"]]
    assert ingress["spec"]["tls"][0]["secretName"]
    backend = rule["http"]["paths"][0]["backend"]["service"]
    assert backend["name"] in KSVCS
    public = urlsplit(support.configmap()["PUBLIC_URL"])
    assert (public.scheme, public.hostname) == ("https", rule["host"])


def test_the_reconciler_runs_every_minute_one_pass_at_a_time() -> None:
    """The reconciler CronJob (issue 12): python -m shared.reconcile with the settings, never
    two passes at once, non-root, on the runner image."""
    cron = support.one("CronJob", "proteus-reconcile")
    assert cron["spec"]["schedule"] == "* * * * *" and cron["spec"]["concurrencyPolicy"] == "Forbid"
    pod = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["command"] == ["python", "-m", "shared.reconcile"]
    assert container["image"] == "proteus-runner:dev"
    assert {ref.get("configMapRef", ref.get("secretRef"))["name"] for ref in container["envFrom"]} == {
        "proteus-config",
        "proteus-secrets",
    }
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert float(support.configmap()["RECONCILE_INTERVAL_S"]) == 60


def test_only_the_services_a_person_waits_on_stay_warm() -> None:
    """upload-signing answers the browser through the gateway (min-scale 1, like the gateway);
    the stream-fed functions scale to zero."""
    warm = {
        name for name, (_, doc) in KSVCS.items() if int(_annotations(doc)["autoscaling.knative.dev/min-scale"]) >= 1
    }
    assert warm == {"gateway", "upload-signing"}
