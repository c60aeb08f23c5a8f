"""C2PA manifests on stored results: signed with the certificate from the settings.

C2PA_CERT_PATH (the signing certificate, then its intermediates, PEM) and C2PA_KEY_PATH
(its private key, PEM; EC P-256/384/521, Ed25519 or RSA: the algorithm follows the key)
name the credentials; C2PA_TSA_URL, when set, adds an RFC 3161 time-stamp (a network call
per image). Without them, production refuses to start (ConfigError) and anywhere else a
development certificate is generated under `<data_dir>/c2pa` (shared/dev_certificate.py).

`ResultSigner.from_settings` loads the credentials and signs a probe image, so a bad
certificate or key fails at start-up, not on the first result. Build one per process.
"""

from __future__ import annotations

import io
import logging
import threading
from pathlib import Path
from typing import Any, Final

import c2pa
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from PIL import Image

from shared.config import ConfigError, Settings
from shared.dev_certificate import dev_credentials
from shared.provenance import DIGITAL_SOURCE_TYPE, MEDIA_TYPES

log = logging.getLogger(__name__)

CLAIM_GENERATOR: Final = "Proteus"
# The c2pa SDK's settings: no thumbnail (the asset is the image itself; it would add a
# second, larger copy to every WebP).
SDK_SETTINGS: Final[dict[str, Any]] = {"builder": {"thumbnail": {"enabled": False}}}
EC_ALGORITHMS: Final = {"secp256r1": "es256", "secp384r1": "es384", "secp521r1": "es512"}


def manifest(model: str, *, smoke: bool, media_type: str) -> dict[str, Any]:
    """The manifest of one result: created by a trained model (named), by Proteus."""
    return {
        "claim_generator_info": [{"name": CLAIM_GENERATOR}],
        "title": f"Proteus try-on by {model}",
        "format": media_type,
        "assertions": [
            {
                "label": "c2pa.actions",
                "data": {
                    "actions": [
                        {
                            "action": "c2pa.created",
                            "digitalSourceType": DIGITAL_SOURCE_TYPE,
                            "softwareAgent": {"name": model},
                            "parameters": {"model": model, "smoke": smoke},
                        }
                    ]
                },
            }
        ],
    }


def signing_algorithm(key_pem: bytes, path: str) -> str:
    """The C2PA algorithm name for a PEM private key (refused when of another kind)."""
    try:
        key = load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError) as exc:
        raise ConfigError(
            f"C2PA_KEY_PATH {path!r} is not an unencrypted PEM private key: {exc}", field="C2PA_KEY_PATH"
        ) from exc
    if isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name in EC_ALGORITHMS:
        return EC_ALGORITHMS[key.curve.name]
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return "ed25519"
    if isinstance(key, rsa.RSAPrivateKey):
        return "ps256"
    raise ConfigError(
        f"C2PA_KEY_PATH {path!r}: C2PA signs with EC P-256/384/521, Ed25519 or RSA keys", field="C2PA_KEY_PATH"
    )


def load_credentials(settings: Settings) -> tuple[bytes, bytes, str]:
    """(certificate chain PEM, private key PEM, where they came from) per the settings."""
    cert_path, key_path = settings.c2pa_cert_path, settings.c2pa_key_path
    if bool(cert_path) != bool(key_path):
        raise ConfigError("C2PA_CERT_PATH and C2PA_KEY_PATH are set together or not at all", field="C2PA_CERT_PATH")
    if not cert_path or not key_path:
        if settings.production:
            raise ConfigError(
                "C2PA_CERT_PATH and C2PA_KEY_PATH must be set when PROTEUS_ENV is production: every result is "
                "signed with a C2PA manifest (see README, 'Provenance')",
                field="C2PA_CERT_PATH",
            )
        chain, key = dev_credentials(settings.data_dir)
        return chain.read_bytes(), key.read_bytes(), f"development certificate {chain}"
    contents = []
    for name, path in (("C2PA_CERT_PATH", cert_path), ("C2PA_KEY_PATH", key_path)):
        try:
            contents.append(Path(path).read_bytes())
        except OSError as exc:
            raise ConfigError(f"{name} {path!r} cannot be read: {exc.strerror}", field=name) from exc
    try:
        x509.load_pem_x509_certificates(contents[0])
    except ValueError as exc:
        raise ConfigError(
            f"C2PA_CERT_PATH {cert_path!r} holds no PEM certificate: {exc}", field="C2PA_CERT_PATH"
        ) from exc
    return contents[0], contents[1], f"certificate {cert_path}"


class ResultSigner:
    """Embeds a signed C2PA manifest in PNG, JPEG and WebP bytes (thread-safe)."""

    def __init__(
        self,
        chain_pem: bytes,
        key_pem: bytes,
        *,
        algorithm: str,
        tsa_url: str | None = None,
        verify_after_sign: bool = False,
    ) -> None:
        """`verify_after_sign`: read every signed image back and validate it (about half the
        cost of signing; `from_settings` does it once, for the probe at start)."""
        info = c2pa.C2paSignerInfo(algorithm, chain_pem, key_pem, tsa_url)
        self._signer = c2pa.Signer.from_info(info)
        self._context = c2pa.Context.from_dict({**SDK_SETTINGS, "verify": {"verify_after_sign": verify_after_sign}})
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> ResultSigner:
        chain, key, origin = load_credentials(settings)
        algorithm = signing_algorithm(key, settings.c2pa_key_path or "the development key")
        try:
            # The probe is verified (a key that does not match its certificate fails here);
            # results are not: the same credentials sign them.
            probe = cls(chain, key, algorithm=algorithm, verify_after_sign=True)
            probe.sign(_probe_png(), "png", model="probe", smoke=True)
            signer = cls(chain, key, algorithm=algorithm, tsa_url=settings.c2pa_tsa_url)
        except c2pa.C2paError as exc:
            raise ConfigError(f"C2PA cannot sign with the {origin}: {exc}", field="C2PA_CERT_PATH") from exc
        log.info(
            "C2PA: results are signed (%s, %s%s)", origin, algorithm, ", time-stamped" * bool(settings.c2pa_tsa_url)
        )
        return signer

    def sign(self, data: bytes, image_format: str, *, model: str, smoke: bool) -> bytes:
        """`data` (an encoded image of `image_format`) with the manifest embedded."""
        media_type = MEDIA_TYPES[image_format]
        out = io.BytesIO()
        with self._lock, c2pa.Builder(manifest(model, smoke=smoke, media_type=media_type), self._context) as builder:
            builder.sign(self._signer, media_type, io.BytesIO(data), out)
        return out.getvalue()


def read_manifest(data: bytes, image_format: str) -> dict[str, Any] | None:
    """The active manifest of an image with its `validation_state` and failure codes, or None."""
    reader = c2pa.Reader.try_create(MEDIA_TYPES[image_format], io.BytesIO(data))
    if reader is None:
        return None
    with reader:
        active = reader.get_active_manifest() or {}
        results = reader.get_validation_results() or {}
        failures = [item["code"] for item in (results.get("activeManifest") or {}).get("failure", [])]
        return {**active, "validation_state": reader.get_validation_state(), "failure_codes": failures}


def created_action(active: dict[str, Any]) -> dict[str, Any] | None:
    """The c2pa.created action of a manifest from `read_manifest`, or None."""
    for assertion in active.get("assertions", []):
        if assertion.get("label", "").startswith("c2pa.actions"):
            for action in assertion.get("data", {}).get("actions", []):
                if action.get("action") == "c2pa.created":
                    return dict(action)
    return None


def _probe_png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buffer, "PNG")
    return buffer.getvalue()
