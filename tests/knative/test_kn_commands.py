"""knative/kn_commands.py and knative/deploy.mk: the generated commands say what the
manifests say (image, env, annotations, concurrency, timeout, resources), and
`make ... DRY_RUN=1` prints exactly those commands."""

from __future__ import annotations

import copy
import importlib.util
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.knative import support

REGISTRY, TAG = "registry.example.com/proteus", "v1.2.3"
KSVCS = support.knative_services()


def _load_kn_commands() -> Any:
    spec = importlib.util.spec_from_file_location("kn_commands", support.KNATIVE / "kn_commands.py")
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    return module


kn = _load_kn_commands()


def parse_kn(argv: list[str]) -> dict[str, Any]:
    """`kn service apply NAME --flag value ...` -> name plus every flag's values."""
    assert argv[:3] == ["kn", "service", "apply"]
    parsed: dict[str, Any] = {"name": argv[3], "flags": {}}
    rest = argv[4:]
    i = 0
    while i < len(rest):
        flag = rest[i]
        assert flag.startswith("--"), f"unexpected argument {flag}"
        if flag == "--cluster-local":
            parsed["flags"].setdefault(flag, []).append(True)
            i += 1
            continue
        parsed["flags"].setdefault(flag, []).append(rest[i + 1])
        i += 2
    return parsed


def _key_values(items: list[str]) -> dict[str, str]:
    return dict(item.split("=", 1) for item in items)


def _resources(values: list[str]) -> dict[str, str]:
    assert len(values) <= 1
    return _key_values(values[0].split(",")) if values else {}


def kn_problems(argv: list[str], path: Path, service: dict[str, Any]) -> list[str]:
    """Where a `kn service apply` command disagrees with its manifest."""
    problems = []
    cmd = parse_kn(argv)
    flags = cmd["flags"]
    meta = service["metadata"]
    template = service["spec"]["template"]
    spec = template["spec"]
    container = spec["containers"][0]

    def expect(what: str, got: Any, want: Any) -> None:
        if got != want:
            problems.append(f"{meta['name']}: {what}: command has {got!r}, manifest {want!r}")

    expect("name", cmd["name"], meta["name"])
    expect("namespace", flags.get("--namespace"), [meta["namespace"]])
    expect("filename", flags.get("--filename"), [str(path.relative_to(support.ROOT))])
    name, _, tag = container["image"].rpartition(":")
    expect("image", flags.get("--image"), [f"{REGISTRY}/{name}:{TAG}"])
    expect(
        "env-from",
        flags.get("--env-from", []),
        [
            f"cm:{s['configMapRef']['name']}" if "configMapRef" in s else f"secret:{s['secretRef']['name']}"
            for s in container.get("envFrom", [])
        ],
    )
    expect("env", _key_values(flags.get("--env", [])), {e["name"]: e["value"] for e in container.get("env", [])})
    expect(
        "revision annotations",
        _key_values(flags.get("--annotation-revision", [])),
        template.get("metadata", {}).get("annotations", {}),
    )
    expect("concurrency-limit", flags.get("--concurrency-limit"), [str(spec["containerConcurrency"])])
    expect("timeout", flags.get("--timeout"), [str(spec["timeoutSeconds"])])
    resources = container.get("resources", {})
    expect(
        "requests",
        _resources(flags.get("--request", [])),
        {k: str(v) for k, v in resources.get("requests", {}).items()},
    )
    expect("limits", _resources(flags.get("--limit", [])), {k: str(v) for k, v in resources.get("limits", {}).items()})
    expect(
        "ports",
        flags.get("--port"),
        [f"{p['name']}:{p['containerPort']}" for p in container["ports"]],
    )
    expect(
        "cluster-local",
        "--cluster-local" in flags,
        meta.get("labels", {}).get("networking.knative.dev/visibility") == "cluster-local",
    )
    deadline = template.get("metadata", {}).get("annotations", {}).get("serving.knative.dev/progress-deadline")
    if deadline and int(flags["--wait-timeout"][0]) < support.duration_seconds(deadline):
        problems.append(f"{meta['name']}: --wait-timeout shorter than the progress deadline")
    # The file passed with --filename is the same Service (kn reads it first).
    from_file = [d for d in support.documents(support.ROOT / flags["--filename"][0]) if d["kind"] == "Service"]
    expect("the --filename manifest", from_file, [service])
    return problems


def _commands() -> list[list[str]]:
    return kn.kn_commands(REGISTRY, TAG)


def test_one_kn_command_per_knative_service() -> None:
    assert sorted(parse_kn(argv)["name"] for argv in _commands()) == sorted(KSVCS)


@pytest.mark.parametrize("name", sorted(KSVCS))
def test_kn_command_matches_its_manifest(name: str) -> None:
    argv = next(a for a in _commands() if a[3] == name)
    path, service = KSVCS[name]
    assert kn_problems(argv, path, service) == []


def test_weave_command_asks_for_a_gpu_and_long_requests() -> None:
    flags = parse_kn(next(a for a in _commands() if a[3] == "weave"))["flags"]
    assert "nvidia.com/gpu=1" in flags["--limit"][0].split(",")
    assert flags["--concurrency-limit"] == ["1"] and flags["--timeout"] == ["600"]  # one batch at a time
    assert "autoscaling.knative.dev/min-scale=0" in flags["--annotation-revision"]


@pytest.mark.parametrize(
    "mutate",
    [
        lambda s: s["spec"]["template"]["spec"].update(containerConcurrency=7),
        lambda s: s["spec"]["template"]["metadata"]["annotations"].update({"autoscaling.knative.dev/max-scale": "9"}),
        lambda s: s["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"].update(memory="1Gi"),
        lambda s: s["spec"]["template"]["spec"]["containers"][0].update(image="proteus-other:dev"),
        lambda s: s["spec"]["template"]["spec"]["containers"][0]["envFrom"].pop(),
    ],
    ids=["concurrency", "annotation", "limit", "image", "env-from"],
)
def test_a_command_that_disagrees_is_noticed(mutate: Any) -> None:
    path, service = KSVCS["weave"]
    argv = next(a for a in _commands() if a[3] == "weave")
    changed = copy.deepcopy(service)
    mutate(changed)
    assert kn_problems(argv, path, changed)


def test_render_points_only_project_images_at_the_registry() -> None:
    files = [support.KNATIVE / "base" / "migrate-job.yaml", support.KNATIVE / "base" / "streams-init-job.yaml"]
    docs = list(yaml.safe_load_all(kn.render(files, REGISTRY, TAG)))
    images = [c["image"] for d in docs for c in support.containers(d)]
    assert images == [f"{REGISTRY}/proteus-runner:{TAG}", "redis:8.2.2-alpine"]


def test_build_and_push_commands_cover_the_build_matrix() -> None:
    builds = kn.build_commands(REGISTRY, TAG)
    assert len(builds) == len(support.images())
    for argv, (name, image) in zip(builds, support.images().items()):
        assert argv[:2] == ["docker", "build"] and argv[-1] == "."
        assert argv[argv.index("-f") + 1] == image["dockerfile"]
        assert argv[argv.index("-t") + 1] == f"{REGISTRY}/{name}:{TAG}"
        args = [argv[i + 1] for i, a in enumerate(argv) if a == "--build-arg"]
        assert args == [f"{k}={v}" for k, v in image["build_args"].items()]
        assert "--target" not in argv
    baked = {a[a.index("-t") + 1] for a in kn.build_commands(REGISTRY, TAG, bake_models=True) if "--target" in a}
    assert baked == {f"{REGISTRY}/{n}:{TAG}" for n, i in support.images().items() if i.get("bake_models")}
    pushes = kn.push_commands(REGISTRY, TAG)
    assert pushes == [["docker", "push", f"{REGISTRY}/{n}:{TAG}"] for n in support.images()]
    with pytest.raises(SystemExit):
        kn.push_commands("", TAG)


# --------------------------------------------------------------------------- deploy.mk

needs_make = pytest.mark.skipif(shutil.which("make") is None, reason="GNU make is not installed")


def make_dry_run(*goals: str, **variables: str) -> list[str]:
    args = ["make", "-s", "--no-print-directory", "-f", "knative/deploy.mk", *goals, "DRY_RUN=1"]
    args += [f"{k}={v}" for k, v in variables.items()]
    out = subprocess.run(args, cwd=support.ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout.splitlines()


def _generated(*args: str) -> list[str]:
    out = subprocess.run(
        [*shlex.split(kn_python()), "knative/kn_commands.py", "--registry", REGISTRY, "--tag", TAG, *args],
        cwd=support.ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    return out.stdout.splitlines()


def kn_python() -> str:
    venv = support.ROOT / ".venv" / "bin" / "python"
    return ".venv/bin/python" if venv.exists() else "python3"


@needs_make
def test_make_deploy_dry_run_prints_the_generated_kn_commands() -> None:
    lines = make_dry_run("deploy", REGISTRY=REGISTRY, TAG=TAG)
    kn_lines = [line for line in lines if line.startswith("kn service apply")]
    assert kn_lines == _generated("kn")
    text = "\n".join(lines)
    for step in (
        "kubectl apply -f knative/base/namespace.yaml -f knative/base/configmap.yaml",
        "get secret proteus-secrets proteus-redis proteus-postgres",
        "job/proteus-streams-init job/proteus-migrate",
        "kubectl apply -f knative/ingress/gateway.yaml",
        "render knative/sources/runner/enqueue.yaml knative/sources/runner/weave.yaml",
        "render knative/base/retention-cronjob.yaml | kubectl apply -f -",
        "-f knative/monitoring/podmonitors.yaml -f knative/monitoring/runner-podmonitor.yaml "
        "-f knative/monitoring/alerts.yaml || true",  # a cluster without the Prometheus Operator still deploys
    ):
        assert step in text
    # Order: data stores and Jobs before the Services, the Services before their sources.
    assert text.index("rollout status") < text.index("wait --for=condition=complete") < text.index("kn service apply")
    assert text.index("kn service apply") < text.index("knative/sources/runner/")
    assert "keda/weave-worker.yaml | kubectl apply" not in text
    assert "secrets.template.yaml" not in text  # placeholders are never applied


@needs_make
@pytest.mark.parametrize("source", ["runner", "redisstreamsource"])
def test_make_deploy_applies_one_event_source_per_route(source: str) -> None:
    from shared.routing import ROUTES

    lines = make_dry_run("deploy", REGISTRY=REGISTRY, TAG=TAG, EVENT_SOURCE=source)
    applied = [line for line in lines if f"knative/sources/{source}/" in line and line.endswith("kubectl apply -f -")]
    assert len(applied) == 1
    files = {word for word in applied[0].split() if word.startswith(f"knative/sources/{source}/")}
    assert files == {f"knative/sources/{source}/{support.ksvc_name(r.consumer)}.yaml" for r in ROUTES}
    for path in files:
        assert (support.ROOT / path).is_file()


@needs_make
def test_make_deploy_options_swap_the_right_pieces() -> None:
    text = "\n".join(
        make_dry_run(
            "deploy",
            REGISTRY=REGISTRY,
            TAG=TAG,
            WEAVE_MODE="keda",
            EVENT_SOURCE="redisstreamsource",
            POSTGRES="external",
        )
    )
    assert "kn service apply weave" not in text
    assert "delete ksvc weave" in text
    assert "render knative/keda/weave-worker.yaml knative/keda/weave-scaledobject.yaml | kubectl apply -f -" in text
    assert "render knative/sources/redisstreamsource/enqueue.yaml knative/sources/redisstreamsource/tailor.yaml" in text
    assert "redisstreamsource/weave.yaml | kubectl apply" not in text
    assert "knative/base/postgres.yaml" not in text and "proteus-postgres" not in text


@needs_make
def test_make_images_push_and_undeploy_dry_run() -> None:
    assert make_dry_run("images", REGISTRY=REGISTRY, TAG=TAG) == _generated("build")
    assert make_dry_run("images", REGISTRY=REGISTRY, TAG=TAG, BAKE_MODELS="1") == _generated("build", "--bake-models")
    assert make_dry_run("push", REGISTRY=REGISTRY, TAG=TAG) == _generated("push")
    undeploy = "\n".join(make_dry_run("undeploy"))
    assert "delete --ignore-not-found -f knative/services/" in undeploy
    assert "namespace.yaml" not in undeploy
    assert "namespace.yaml" in "\n".join(make_dry_run("undeploy", PURGE="1"))


@needs_make
def test_make_push_and_deploy_refuse_without_a_registry() -> None:
    for goal in ("push", "deploy"):
        out = subprocess.run(
            ["make", "-s", "-f", "knative/deploy.mk", goal, "DRY_RUN=1", "REGISTRY="],
            cwd=support.ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert out.returncode != 0 and "REGISTRY" in out.stderr


@needs_make
def test_make_deploy_really_runs_the_commands_it_prints(tmp_path: Path) -> None:
    """Without DRY_RUN the same lines go through bash: with stand-ins for kubectl and kn
    that log their arguments (and what is piped to them), every step runs and exits 0."""
    log = tmp_path / "calls.log"
    for tool in ("kubectl", "kn"):
        script = tmp_path / tool
        script.write_text(f'#!/bin/sh\necho "{tool} $*" >> {log}\ncase "$*" in *"-f -"*) cat >> {log} ;; esac\n')
        script.chmod(0o755)
    out = subprocess.run(
        [
            "make",
            "-s",
            "-f",
            "knative/deploy.mk",
            "deploy",
            f"REGISTRY={REGISTRY}",
            f"TAG={TAG}",
            f"KUBECTL={tmp_path / 'kubectl'}",
            f"KN={tmp_path / 'kn'}",
            f"KN_PY={kn_python()}",
        ],
        cwd=support.ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    calls = log.read_text()
    assert "kubectl apply -f knative/base/namespace.yaml" in calls
    assert sum(line.startswith("kn service apply") for line in calls.splitlines()) == len(KSVCS)
    assert f"image: {REGISTRY}/proteus-runner:{TAG}" in calls  # rendered manifests reached kubectl


@needs_make
def test_nothing_runs_when_generating_the_commands_fails() -> None:
    out = subprocess.run(
        [
            "make",
            "-s",
            "-f",
            "knative/deploy.mk",
            "deploy",
            "DRY_RUN=1",
            f"REGISTRY={REGISTRY}",
            "KN_PY=/nonexistent/python",
        ],
        cwd=support.ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode != 0 and out.stdout == ""
