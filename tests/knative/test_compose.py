"""docker-compose.yml validates against the Compose Specification's JSON Schema and is
wired like the rest: images built as docker/images.yaml says, Settings' variable
names only, function URLs pointing at the compose services, one set of credentials."""

from __future__ import annotations

import copy
import json
import re
import shlex
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import pytest

from shared.routing import FUNCTION_PORTS, ROUTES
from tests.knative import support
from tests.knative.dockerlint import command_problems, parse

COMPOSE = support.compose()
SERVICES = COMPOSE["services"]
PROTEUS = {name for name, svc in SERVICES.items() if str(svc.get("image", "")).startswith("proteus-")}
INTERPOLATION = re.compile(r"\$\{([A-Z_][A-Z0-9_]*)(?::?-[^}]*)?\}")


def schema_errors(doc: dict[str, Any]) -> list[str]:
    schema = json.loads(support.COMPOSE_SCHEMA.read_text())
    return [f"{list(e.absolute_path)}: {e.message}" for e in jsonschema.Draft7Validator(schema).iter_errors(doc)]


def test_compose_file_validates_against_the_compose_spec() -> None:
    assert schema_errors(COMPOSE) == []


@pytest.mark.parametrize(
    "mutate",
    [
        lambda c: c["services"]["redis"].update(healthcheck={"tests": ["CMD", "true"]}),
        lambda c: c["services"]["gateway"].update(ports="8000:8080"),
        lambda c: c["services"]["runner"].update(depends_on={"redis": {"condition": "service_ready"}}),
    ],
    ids=["unknown key", "wrong type", "bad enum"],
)
def test_the_compose_schema_is_strict(mutate: Any) -> None:
    doc = copy.deepcopy(COMPOSE)
    mutate(doc)
    assert schema_errors(doc)


def test_the_whole_stack_is_there() -> None:
    expected = {"redis", "postgres", "minio", "minio-init", "migrate", "runner", "gateway"}
    expected |= {support.ksvc_name(f) for f in FUNCTION_PORTS}
    assert set(SERVICES) == expected


def _environment(name: str) -> dict[str, str]:
    env = SERVICES[name].get("environment", {})
    return {k: str(v) for k, v in env.items()}


def _resolve(value: str) -> str:
    """Compose interpolation with an empty .env: ${VAR:-default} -> default."""
    return re.sub(r"\$\{[A-Z_][A-Z0-9_]*:?-([^}]*)\}", r"\1", value)


@pytest.mark.parametrize("name", sorted(PROTEUS))
def test_proteus_services_build_what_images_yaml_builds(name: str) -> None:
    service = SERVICES[name]
    build = service["build"]
    assert build["context"] == "."
    dockerfile = support.ROOT / build["dockerfile"]
    stages, _ = parse(dockerfile.read_text())
    assert set(build["args"]) <= stages[0].args
    matching = [
        image
        for image in support.images()
        if {k: support.images()[image]["build_args"][k] for k in ("REQUIREMENTS", "COMMAND")}
        == {k: build["args"][k] for k in ("REQUIREMENTS", "COMMAND")}
    ]
    assert matching, f"{name}: build args match no image of docker/images.yaml"
    command = service.get("command") or build["args"]["COMMAND"]
    assert command_problems(command) == []


@pytest.mark.parametrize("name", sorted(PROTEUS))
def test_proteus_services_use_settings_variables_only(name: str) -> None:
    env = _environment(name)
    assert set(env) <= support.settings_variables(), set(env) - support.settings_variables()
    assert SERVICES[name]["env_file"] == [{"path": ".env", "required": False}]
    settings = support.settings_from({k: _resolve(v) for k, v in env.items()})
    assert settings.storage_backend == "s3" and settings.redis_url and settings.database_url.startswith("postgresql")


def test_interpolated_variables_are_documented_settings() -> None:
    used = set(INTERPOLATION.findall(support.COMPOSE_FILE.read_text()))
    assert used and used <= support.settings_variables()
    example = {name for name, _ in support.env_example()}
    assert used <= example


def test_function_urls_point_at_the_compose_services() -> None:
    for name in PROTEUS:
        settings = support.settings_from({k: _resolve(v) for k, v in _environment(name).items()})
        for function in FUNCTION_PORTS:
            url = urlsplit(settings.function_url(function))
            assert (url.hostname, url.port) == (support.ksvc_name(function), 8080), function
    consumers = {route.consumer for route in ROUTES}
    assert {support.ksvc_name(c) for c in consumers} <= set(SERVICES["runner"]["depends_on"])


def test_one_set_of_credentials_wires_the_data_stores() -> None:
    env = {k: _resolve(v) for k, v in _environment("gateway").items()}
    postgres = SERVICES["postgres"]["environment"]
    db = urlsplit(env["DATABASE_URL"])
    assert (db.hostname, db.port, db.username, db.password, db.path.lstrip("/")) == (
        "postgres",
        5432,
        postgres["POSTGRES_USER"],
        postgres["POSTGRES_PASSWORD"],
        postgres["POSTGRES_DB"],
    )
    assert urlsplit(env["REDIS_URL"]).hostname == "redis"
    minio = SERVICES["minio"]["environment"]
    assert SERVICES["gateway"]["environment"]["S3_ACCESS_KEY_ID"] == minio["MINIO_ROOT_USER"]
    assert SERVICES["gateway"]["environment"]["S3_SECRET_ACCESS_KEY"] == minio["MINIO_ROOT_PASSWORD"]
    init = SERVICES["minio-init"]
    assert init["environment"]["S3_BUCKET"] == SERVICES["gateway"]["environment"]["S3_BUCKET"]
    assert "mc mb --ignore-existing" in " ".join(init["command"])
    assert urlsplit(env["S3_ENDPOINT_URL"]).hostname == "minio"


def test_start_order_waits_for_migrations_and_the_bucket() -> None:
    assert shlex.join(SERVICES["migrate"]["command"]) == "python -m shared.db.migrate"
    assert SERVICES["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name in PROTEUS - {"migrate", "runner"}:
        depends = SERVICES[name]["depends_on"]
        assert depends["migrate"]["condition"] == "service_completed_successfully", name
        assert depends["minio-init"]["condition"] == "service_completed_successfully", name
        assert "healthcheck" in SERVICES[name]


def test_external_images_are_pinned() -> None:
    for name, service in SERVICES.items():
        if name in PROTEUS:
            continue
        image = service["image"]
        # An exact release: x.y[.z] (PostgreSQL's versions have two parts) or MinIO's
        # RELEASE.<date>, or a digest.
        assert re.search(r":(\d+\.\d+[\w.-]*|RELEASE\.[\w-]+)$", image) or "@sha256:" in image, image
