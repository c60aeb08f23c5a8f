"""Every container that runs weave (the Knative service and KEDA's pull-mode worker) can read the
C2PA signing certificate the configmap points at: in production weave refuses to start without it."""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Any

from tests.knative import support


def runs_weave(container: dict[str, Any]) -> bool:
    command = " ".join(container.get("command", []) + container.get("args", []))
    return (
        container.get("image", "").startswith("proteus-weave") and ".download" not in command
    )  # not the weights' fetch job


def test_every_weave_container_mounts_the_c2pa_secret_where_the_configmap_points() -> None:
    config = support.configmap()
    folders = {str(PurePosixPath(config[name]).parent) for name in ("C2PA_CERT_PATH", "C2PA_KEY_PATH")}
    assert len(folders) == 1, folders
    (folder,) = folders
    files = {PurePosixPath(config[name]).name for name in ("C2PA_CERT_PATH", "C2PA_KEY_PATH")}
    assert set(support.secret_template("proteus-c2pa")) == files  # the Secret holds the files the paths name
    checked = []
    for path, doc in support.workloads():
        pod = support.pod_spec(doc)
        volumes = {v["name"]: v for v in pod.get("volumes", [])}
        for container in support.containers(doc):
            if not runs_weave(container):
                continue
            mounts = {m["mountPath"]: m["name"] for m in container.get("volumeMounts", [])}
            assert folder in mounts, f"{path.name}: {container['name']} does not mount {folder}"
            assert volumes[mounts[folder]].get("secret", {}).get("secretName") == "proteus-c2pa", path.name
            checked.append(path.name)
    assert sorted(checked) == ["weave-worker.yaml", "weave.yaml"], checked
