"""Dockerfile lint and the build matrix (docker/images.yaml): pinned bases, non-root,
no secrets, and every command, module and requirements file named actually exists."""

from __future__ import annotations

import ast
import re
import shlex
from pathlib import Path
from typing import Any

import pytest

from shared.routing import FUNCTION_PORTS
from tests.knative import support
from tests.knative.dockerlint import command_problems, dockerfile_problems, parse, requirement_files

DOCKERFILES = sorted(support.DOCKER.glob("Dockerfile*"))


# --------------------------------------------------------------------------- lint


def test_there_are_dockerfiles() -> None:
    assert [p.name for p in DOCKERFILES] == ["Dockerfile", "Dockerfile.weave"]


@pytest.mark.parametrize("path", DOCKERFILES, ids=[p.name for p in DOCKERFILES])
def test_dockerfile_lint(path: Path) -> None:
    assert dockerfile_problems(path.read_text()) == []


def test_the_lint_catches_the_usual_mistakes() -> None:
    bad = """
FROM python:latest
ENV DB_PASSWORD=hunter2 DATABASE_URL=postgresql://u:p@db/x
ARG API_TOKEN
CMD gunicorn app:app
"""
    problems = "\n".join(dockerfile_problems(bad))
    for expected in (
        "pin the tag",
        "runs as root",
        "ENV DB_PASSWORD",
        "ENV DATABASE_URL",
        "ARG API_TOKEN",
        "exec-form CMD",
        "PORT",
    ):
        assert expected in problems
    assert dockerfile_problems('FROM python:3.11-slim\nUSER 10001\nENV PORT=8080\nCMD ["x"]\n') == [
        "FROM python:3.11-slim: pin the tag to an exact version (or a digest)"
    ]


@pytest.mark.parametrize("path", DOCKERFILES, ids=[p.name for p in DOCKERFILES])
def test_copied_sources_exist_and_are_in_the_build_context(path: Path) -> None:
    ignored = {line.strip().rstrip("/") for line in (support.ROOT / ".dockerignore").read_text().splitlines()}
    stages, _ = parse(path.read_text())
    for stage in stages:
        for copy in stage.copies:
            if any(part.startswith("--from=") for part in copy):
                assert "--from=models" in copy, copy  # the optional weights build context
                continue
            for source in [p for p in copy[:-1] if not p.startswith("--")]:
                assert (support.ROOT / source).exists(), f"COPY {source}: no such path"
                assert source.rstrip("/").split("/")[0] not in ignored, f"COPY {source}: excluded by .dockerignore"


def test_dockerignore_keeps_secrets_state_and_weights_out() -> None:
    ignored = {line.strip() for line in (support.ROOT / ".dockerignore").read_text().splitlines()}
    assert {".git", ".venv", ".env", ".env.*", "var", "models"} <= ignored
    assert not {"shared", "functions", "gateway", "requirements", "cloudevents-schemas"} & ignored


def test_weave_torch_build_matches_the_cuda_base() -> None:
    stages, _ = parse((support.DOCKER / "Dockerfile.weave").read_text())
    cuda = re.match(r"nvidia/cuda:(\d+)\.(\d+)\.\d+-", stages[0].base)
    assert cuda, stages[0].base
    index = support.images()["proteus-weave"]["build_args"]["TORCH_INDEX_URL"]
    wheel = re.search(r"/whl/cu(\d+)(\d)$", index)
    assert wheel, index
    # The wheel's CUDA may not be newer than the image's (same major version).
    assert (int(wheel[1]), int(wheel[2])) <= (int(cuda[1]), int(cuda[2])) and wheel[1] == cuda[1]


# --------------------------------------------------------------------------- build matrix


IMAGES = support.images()


@pytest.mark.parametrize("name", sorted(IMAGES))
def test_image_build_matrix_names_real_things(name: str) -> None:
    image = IMAGES[name]
    dockerfile = support.ROOT / image["dockerfile"]
    assert dockerfile.is_file()
    stages, global_args = parse(dockerfile.read_text())
    declared = stages[0].args | global_args
    assert set(image["build_args"]) <= declared, f"{name}: build args the Dockerfile does not declare"
    requirements = support.ROOT / image["build_args"]["REQUIREMENTS"]
    for path in requirement_files(requirements):
        assert path.is_file(), f"{name}: {path} does not exist"
    assert command_problems(image["build_args"]["COMMAND"]) == []
    # The command's top-level package is copied into the image.
    argv = shlex.split(image["build_args"]["COMMAND"])
    root = (argv[2] if argv[:2] == ["python", "-m"] else argv[3]).split(".")[0]
    copied = {c[-2].rstrip("/") for s in stages for c in s.copies if not c[0].startswith("--from")}
    assert root in copied, f"{name}: {root}/ is not copied into the image"


def test_command_check_catches_missing_modules() -> None:
    assert command_problems("python -m shared.nothing_here")
    assert command_problems("gunicorn -c functions/nope/gunicorn.conf.py functions.nope.main:create_app()")
    assert command_problems("gunicorn -c gateway/gunicorn.conf.py gateway.app:no_such_factory()")
    assert command_problems("python -m shared.streams.runner") == []


def test_every_function_and_the_gateway_have_an_image_with_their_gunicorn() -> None:
    for function in FUNCTION_PORTS:
        image = IMAGES[f"proteus-{support.ksvc_name(function)}"]
        assert image["build_args"]["COMMAND"] == (
            f"gunicorn -c functions/{function}/gunicorn.conf.py functions.{function}.main:create_app()"
        )
        assert image["build_args"]["REQUIREMENTS"] == f"requirements/function-{function}.txt"
    assert IMAGES["proteus-gateway"]["build_args"]["COMMAND"] == (
        "gunicorn -c gateway/gunicorn.conf.py gateway.app:create_app()"
    )
    assert IMAGES["proteus-weave"]["dockerfile"] == "docker/Dockerfile.weave"


def _command_of(container: dict[str, Any]) -> list[str] | None:
    return container.get("command")


@pytest.mark.parametrize(
    "item", list(support.workloads()), ids=[str(d["metadata"]["name"]) for _, d in support.workloads()]
)
def test_manifest_commands_exist_in_their_image(item: tuple[Path, dict[str, Any]]) -> None:
    """Containers of project images that override the command name real modules."""
    for container in support.containers(item[1]):
        command = _command_of(container)
        if not container["image"].startswith("proteus-") or command is None:
            continue
        assert command_problems(command) == []
        dockerfile = support.ROOT / IMAGES[container["image"].split(":")[0]]["dockerfile"]
        stages, _ = parse(dockerfile.read_text())
        copied = {c[-2].rstrip("/") for s in stages for c in s.copies}
        assert command[2].split(".")[0] in copied


FIRST_PARTY = {"shared", "functions", "gateway", "tests", "knative", "bench"}


@pytest.mark.parametrize("path", DOCKERFILES, ids=[p.name for p in DOCKERFILES])
def test_copied_code_imports_only_copied_packages(path: Path) -> None:
    """Every first-party package imported by the code an image contains is in the image
    (e.g. the weave image has no gateway/)."""
    stages, _ = parse(path.read_text())
    copied = {c[-2].rstrip("/") for s in stages for c in s.copies if not c[0].startswith("--from")}
    for package in sorted(copied & FIRST_PARTY):
        for source in (support.ROOT / package).rglob("*.py"):
            if package == "shared" and source.name == "devstack.py":
                continue  # `make run` only: starts every process from the checkout
            for node in ast.walk(ast.parse(source.read_text())):
                names = []
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                for name in names:
                    root = name.split(".")[0]
                    if root in FIRST_PARTY:
                        assert root in copied, f"{source.relative_to(support.ROOT)} imports {name}, not in {path.name}"
