#!/usr/bin/env python3
"""The deployment commands of knative/deploy.mk, generated from the files they deploy.

The Knative Service manifests (knative/services/*.yaml) and the build matrix
(docker/images.yaml) are the single source of truth; this script derives from them:

  kn       one `kn service apply` per Knative Service, its flags read from the manifest
           (image, env-from, revision annotations, concurrency, timeout, resources)
  render   manifests with their images pointed at REGISTRY/NAME:TAG, for `kubectl apply`
  build    the `docker build` command of every image in docker/images.yaml
  push     the matching `docker push` commands

Commands are printed one per line, shell-quoted; deploy.mk pipes them to bash (or just
prints them with DRY_RUN=1). tests/knative/test_kn_commands.py checks that every flag
equals the manifest it came from.

Why `--filename` and flags together: kn has no flags for startup probes, tolerations
or PVC volumes, so the manifest itself is passed with --filename; the flags restate the
reviewable settings explicitly (kn applies them on top of the file, to the same
values) and --image points the Service at the pushed image.
"""

from __future__ import annotations

import argparse
import re
import shlex
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
SERVICES_DIR = ROOT / "knative" / "services"
IMAGES_FILE = ROOT / "docker" / "images.yaml"

# Images named in the manifests as `proteus-<name>:dev`; `render` and `kn` replace the
# registry and the tag.
LOCAL_TAG = "dev"
KN_DEFAULT_WAIT_S = 600

_DURATION = re.compile(r"^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")


def duration_seconds(value: str) -> int:
    """'1200s', '10m', '1h30m' -> seconds (the Go duration forms used in annotations)."""
    match = _DURATION.match(value.strip())
    if not match or not any(match.groups()):
        raise ValueError(f"not a duration: {value!r}")
    hours, minutes, seconds = (int(g or 0) for g in match.groups())
    return hours * 3600 + minutes * 60 + seconds


def load_documents(path: Path) -> list[dict[str, Any]]:
    """Every YAML document of a manifest file (empty documents dropped)."""
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def knative_services(paths: Iterable[Path] | None = None) -> list[tuple[Path, dict[str, Any]]]:
    """(file, document) for each Knative Service, sorted by file name."""
    files = sorted(paths) if paths is not None else sorted(SERVICES_DIR.glob("*.yaml"))
    found = []
    for path in files:
        for doc in load_documents(path):
            if doc.get("apiVersion") == "serving.knative.dev/v1" and doc.get("kind") == "Service":
                found.append((path, doc))
    return found


def load_images() -> dict[str, dict[str, Any]]:
    """docker/images.yaml's image table."""
    return yaml.safe_load(IMAGES_FILE.read_text())["images"]


def image_ref(image: str, registry: str, tag: str) -> str:
    """`proteus-weave:dev` -> `REGISTRY/proteus-weave:TAG`; other images unchanged."""
    name, _, current = image.rpartition(":")
    if not name:
        name, current = image, ""
    if not name.startswith("proteus-") or current != LOCAL_TAG:
        return image
    prefix = f"{registry.rstrip('/')}/" if registry else ""
    return f"{prefix}{name}:{tag}"


def _relative(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def _resources(values: dict[str, Any]) -> str:
    return ",".join(f"{key}={values[key]}" for key in sorted(values))


def kn_apply_args(path: Path, service: dict[str, Any], registry: str, tag: str) -> list[str]:
    """The argv of `kn service apply` for one Knative Service manifest."""
    meta = service["metadata"]
    template = service["spec"]["template"]
    spec = template["spec"]
    containers = spec["containers"]
    if len(containers) != 1:
        raise ValueError(f"{path}: kn_commands supports one container per Service")
    container = containers[0]

    argv = ["kn", "service", "apply", meta["name"]]
    argv += ["--namespace", meta["namespace"]]
    argv += ["--filename", _relative(path)]
    argv += ["--image", image_ref(container["image"], registry, tag)]
    if meta.get("labels", {}).get("networking.knative.dev/visibility") == "cluster-local":
        argv.append("--cluster-local")
    for port in container.get("ports", []):
        name = port.get("name")
        argv += ["--port", f"{name}:{port['containerPort']}" if name else str(port["containerPort"])]
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            argv += ["--env-from", f"cm:{source['configMapRef']['name']}"]
        elif "secretRef" in source:
            argv += ["--env-from", f"secret:{source['secretRef']['name']}"]
        else:  # pragma: no cover - manifests only use the two kinds
            raise ValueError(f"{path}: unsupported envFrom {source}")
    for env in container.get("env", []):
        if "value" not in env:
            raise ValueError(f"{path}: env {env['name']} uses valueFrom, which kn cannot restate")
        argv += ["--env", f"{env['name']}={env['value']}"]
    annotations = template.get("metadata", {}).get("annotations", {})
    for key in sorted(annotations):
        argv += ["--annotation-revision", f"{key}={annotations[key]}"]
    if "containerConcurrency" in spec:
        argv += ["--concurrency-limit", str(spec["containerConcurrency"])]
    if "timeoutSeconds" in spec:
        argv += ["--timeout", str(spec["timeoutSeconds"])]
    resources = container.get("resources", {})
    if resources.get("requests"):
        argv += ["--request", _resources(resources["requests"])]
    if resources.get("limits"):
        argv += ["--limit", _resources(resources["limits"])]
    deadline = annotations.get("serving.knative.dev/progress-deadline")
    wait = max(KN_DEFAULT_WAIT_S, duration_seconds(deadline) if deadline else 0)
    argv += ["--wait-timeout", str(wait)]
    return argv


def kn_commands(registry: str, tag: str, only: Iterable[str] = (), exclude: Iterable[str] = ()) -> list[list[str]]:
    only, exclude = set(only), set(exclude)
    commands = []
    for path, service in knative_services():
        name = service["metadata"]["name"]
        if (only and name not in only) or name in exclude:
            continue
        commands.append(kn_apply_args(path, service, registry, tag))
    return commands


def render(paths: Iterable[Path], registry: str, tag: str) -> str:
    """The manifests as one YAML stream, every Proteus image pointed at the registry."""

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key in ("containers", "initContainers") and isinstance(value, list):
                    for container in value:
                        container["image"] = image_ref(container["image"], registry, tag)
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    docs = []
    for path in paths:
        for doc in load_documents(path):
            walk(doc)
            docs.append(doc)
    return yaml.safe_dump_all(docs, sort_keys=False)


def build_commands(registry: str, tag: str, bake_models: bool = False) -> list[list[str]]:
    commands = []
    for name, image in load_images().items():
        argv = ["docker", "build", "-f", image["dockerfile"], "-t", image_ref(f"{name}:{LOCAL_TAG}", registry, tag)]
        for key, value in image.get("build_args", {}).items():
            argv += ["--build-arg", f"{key}={value}"]
        if bake_models and image.get("bake_models"):
            argv += ["--build-context", "models=./models", "--target", "baked"]
        argv.append(".")
        commands.append(argv)
    return commands


def push_commands(registry: str, tag: str) -> list[list[str]]:
    if not registry:
        raise SystemExit("kn_commands.py push: REGISTRY is required")
    return [["docker", "push", image_ref(f"{name}:{LOCAL_TAG}", registry, tag)] for name in load_images()]


def _lines(commands: Iterable[list[str]]) -> Iterator[str]:
    for argv in commands:
        yield shlex.join(argv)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--registry", default="", help="image registry, e.g. registry.example.com/proteus")
    parser.add_argument("--tag", default=LOCAL_TAG, help="image tag (default: dev)")
    sub = parser.add_subparsers(dest="command", required=True)
    kn = sub.add_parser("kn", help="kn service apply, one per Knative Service")
    kn.add_argument("--only", action="append", default=[], help="only this Service (repeatable)")
    kn.add_argument("--exclude", action="append", default=[], help="skip this Service (repeatable)")
    rend = sub.add_parser("render", help="manifests with registry images, for kubectl apply -f -")
    rend.add_argument("files", nargs="+", type=Path)
    build = sub.add_parser("build", help="docker build of every image")
    build.add_argument("--bake-models", action="store_true", help="build the `baked` target where supported")
    sub.add_parser("push", help="docker push of every image")
    args = parser.parse_args(argv)

    if args.command == "kn":
        lines = list(_lines(kn_commands(args.registry, args.tag, args.only, args.exclude)))
    elif args.command == "render":
        sys.stdout.write(render(args.files, args.registry, args.tag))
        return 0
    elif args.command == "build":
        lines = list(_lines(build_commands(args.registry, args.tag, args.bake_models)))
    else:
        lines = list(_lines(push_commands(args.registry, args.tag)))
    for line in lines:
        print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
