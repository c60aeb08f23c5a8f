"""The data stores and the settings the manifests give them: Redis and PostgreSQL keep their data
on volumes, the Secret template holds placeholders only and its URLs point at those stores, and
the ConfigMap and Secret together carry exactly the settings the services load."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from tests.knative import support

# --------------------------------------------------------------------------- data stores


def test_redis_persists_with_aof_on_a_volume_and_never_evicts() -> None:
    redis = support.one("StatefulSet", "redis")
    args = support.pod_spec(redis)["containers"][0]["args"]
    assert args[args.index("--appendonly") + 1] == "yes"
    assert args[args.index("--maxmemory-policy") + 1] == "noeviction"
    assert args[args.index("--requirepass") + 1] == "$(REDIS_PASSWORD)"
    assert redis["spec"]["volumeClaimTemplates"][0]["metadata"]["name"] == "data"
    assert support.pod_spec(redis)["containers"][0]["volumeMounts"] == [{"name": "data", "mountPath": "/data"}]
    image = support.pod_spec(redis)["containers"][0]["image"]
    assert int(image.split(":")[1].split(".")[0]) >= 7  # KEDA's lagCount needs Redis 7+


def test_postgres_keeps_its_data_on_a_volume() -> None:
    postgres = support.one("StatefulSet", "postgres")
    container = support.pod_spec(postgres)["containers"][0]
    assert container["volumeMounts"][0]["mountPath"] == "/var/lib/postgresql/data"
    assert {"name": "PGDATA", "value": "/var/lib/postgresql/data/pgdata"} in container["env"]
    assert postgres["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"]


# --------------------------------------------------------------------------- secrets


SECRET_KEYS = re.compile(r"PASSWORD|SECRET|ACCESS_KEY|TOKEN|password")


def test_secret_template_holds_placeholders_only() -> None:
    for _, doc in support.docs_of("Secret"):
        assert "data" not in doc, "stringData placeholders only, never base64 data"
        for key, value in doc["stringData"].items():
            if SECRET_KEYS.search(key):
                assert value.startswith("REPLACE_WITH_"), f"{key} is not a placeholder"
            password = urlsplit(value).password if "://" in value else None
            if password is not None:
                assert password.startswith("REPLACE_WITH_"), f"{key} embeds a password"


def test_urls_in_the_secret_match_the_data_stores() -> None:
    secrets = support.secret_template()
    redis_password = support.secret_template("proteus-redis")["password"]
    postgres = support.secret_template("proteus-postgres")
    for key in ("REDIS_URL", "RATE_LIMIT_STORAGE_URL"):
        url = urlsplit(secrets[key])
        assert (url.hostname, url.port, url.password) == ("redis.proteus.svc.cluster.local", 6379, redis_password)
    db = urlsplit(secrets["DATABASE_URL"])
    assert (db.hostname, db.port) == ("postgres.proteus.svc.cluster.local", 5432)
    assert (db.username, db.password, db.path.lstrip("/")) == (
        postgres["POSTGRES_USER"],
        postgres["POSTGRES_PASSWORD"],
        postgres["POSTGRES_DB"],
    )
    assert {s["metadata"]["name"] for _, s in support.docs_of("Service")} >= {"redis", "postgres"}


def test_configmap_and_secret_carry_exactly_the_settings_variables() -> None:
    config, secrets = set(support.configmap()), set(support.secret_template())
    assert not config & secrets
    assert config | secrets == support.settings_variables()


def test_the_production_settings_load() -> None:
    settings = support.settings_from({**support.configmap(), **support.secret_template()})
    assert settings.production and settings.storage_backend == "s3"
    weave = support.knative_services()["weave"][1]["spec"]["template"]["spec"]
    assert settings.runner_request_timeout_s >= weave["timeoutSeconds"]
