"""Results say what they are: a signed C2PA manifest (read back by c2pa.Reader) naming the
model with the IPTC digital source type, and the same type in the image's XMP, for PNG,
JPEG and WebP; the signing credentials come from the settings or, outside production,
from a development CA generated once."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from PIL import Image

from shared.c2pa_signing import ResultSigner, created_action, read_manifest
from shared.config import ConfigError, Settings
from shared.dev_certificate import dev_credentials, make_dev_credentials
from shared.provenance import DIGITAL_SOURCE_TYPE, encode_result, encode_xmp, read_digital_source_type

# The dev certificate is not on any trust list; everything else must validate.
UNTRUSTED = "signingCredential.untrusted"


@pytest.fixture(scope="module")
def signer(tmp_path_factory: pytest.TempPathFactory) -> ResultSigner:
    data_dir = tmp_path_factory.mktemp("c2pa-var")
    return ResultSigner.from_settings(Settings(environment="test", data_dir=str(data_dir)))


def picture() -> Image.Image:
    image = Image.new("RGB", (48, 64), (180, 40, 30))
    image.paste((20, 60, 200), (10, 10, 30, 50))
    return image


@pytest.mark.parametrize("image_format", ["png", "jpeg", "webp"])
def test_a_result_carries_a_signed_manifest_and_the_iptc_type(signer: ResultSigner, image_format: str) -> None:
    data = encode_result(picture(), image_format, model="fashn-vton-1.5", smoke=True, signer=signer)

    manifest = read_manifest(data, image_format)
    assert manifest is not None
    assert manifest["validation_state"] in ("Valid", "Trusted")
    assert set(manifest["failure_codes"]) <= {UNTRUSTED}  # the signature and every hash are intact
    assert [g["name"] for g in manifest["claim_generator_info"]] == ["Proteus"]
    action = created_action(manifest)
    assert action is not None
    assert action["digitalSourceType"] == DIGITAL_SOURCE_TYPE
    assert action["softwareAgent"]["name"] == "fashn-vton-1.5"
    assert action["parameters"] == {"model": "fashn-vton-1.5", "smoke": True}
    assert manifest["signature_info"]["common_name"] == "Proteus development signer"

    assert read_digital_source_type(data) == DIGITAL_SOURCE_TYPE
    with Image.open(io.BytesIO(data)) as image:
        assert image.format == image_format.upper() and image.size == (48, 64)


def test_a_changed_image_fails_validation(signer: ResultSigner) -> None:
    data = bytearray(encode_result(picture(), "jpeg", model="catvton-maskfree", smoke=False, signer=signer))
    data[-40] ^= 0xFF  # inside the entropy-coded pixels, before the end-of-image marker
    manifest = read_manifest(bytes(data), "jpeg")
    assert manifest is not None
    assert any("mismatch" in code for code in manifest["failure_codes"]), manifest["failure_codes"]


def test_an_image_without_a_manifest_reads_as_none() -> None:
    assert read_manifest(encode_xmp(picture(), "png", model="m"), "png") is None


def test_the_development_certificate_is_a_ca_signed_leaf_made_once(tmp_path: Path) -> None:
    chain_path, key_path = dev_credentials(tmp_path)
    leaf, root = x509.load_pem_x509_certificates(chain_path.read_bytes())
    assert leaf.issuer == root.subject != leaf.subject  # not self-signed
    leaf.verify_directly_issued_by(root)
    assert leaf.extensions.get_extension_for_class(x509.KeyUsage).value.digital_signature
    assert not leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    usages = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.EMAIL_PROTECTION in usages
    assert isinstance(leaf.public_key(), ec.EllipticCurvePublicKey) and leaf.public_key().curve.name == "secp256r1"
    assert key_path.stat().st_mode & 0o077 == 0
    again = dev_credentials(tmp_path)
    assert again == (chain_path, key_path) and again[0].read_bytes() == chain_path.read_bytes()


def test_certificate_and_key_from_the_settings_sign(tmp_path: Path) -> None:
    chain, key, _ = make_dev_credentials()
    (tmp_path / "chain.pem").write_bytes(chain)
    (tmp_path / "key.pem").write_bytes(key)
    settings = Settings(
        environment="production", c2pa_cert_path=str(tmp_path / "chain.pem"), c2pa_key_path=str(tmp_path / "key.pem")
    )
    data = encode_result(picture(), "webp", model="m", smoke=False, signer=ResultSigner.from_settings(settings))
    manifest = read_manifest(data, "webp")
    assert manifest is not None and set(manifest["failure_codes"]) <= {UNTRUSTED}
    assert not (tmp_path / "c2pa").exists()


def test_production_without_a_certificate_refuses_to_start(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="C2PA_CERT_PATH and C2PA_KEY_PATH must be set") as error:
        ResultSigner.from_settings(Settings(environment="production", data_dir=str(tmp_path)))
    assert error.value.field == "C2PA_CERT_PATH"
    assert not (tmp_path / "c2pa").exists()


def test_unusable_credentials_are_named(tmp_path: Path) -> None:
    chain, key, _ = make_dev_credentials()
    (tmp_path / "key.pem").write_bytes(key)
    with pytest.raises(ConfigError, match="set together"):
        ResultSigner.from_settings(Settings(c2pa_key_path=str(tmp_path / "key.pem")))
    with pytest.raises(ConfigError, match="C2PA_CERT_PATH .*missing.pem.* cannot be read"):
        ResultSigner.from_settings(
            Settings(c2pa_cert_path=str(tmp_path / "missing.pem"), c2pa_key_path=str(tmp_path / "key.pem"))
        )
    (tmp_path / "other-chain.pem").write_bytes(make_dev_credentials()[0])  # not this key's certificate
    with pytest.raises(ConfigError, match="C2PA cannot sign with the certificate"):
        ResultSigner.from_settings(
            Settings(c2pa_cert_path=str(tmp_path / "other-chain.pem"), c2pa_key_path=str(tmp_path / "key.pem"))
        )
    (tmp_path / "self-signed.pem").write_bytes(self_signed(key))
    with pytest.raises(ConfigError, match="C2PA cannot sign with the certificate"):
        ResultSigner.from_settings(
            Settings(c2pa_cert_path=str(tmp_path / "self-signed.pem"), c2pa_key_path=str(tmp_path / "key.pem"))
        )


def self_signed(key_pem: bytes) -> bytes:
    """A self-signed certificate for the key: C2PA refuses those."""
    from datetime import UTC, datetime, timedelta

    key = serialization.load_pem_private_key(key_pem, password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "self")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM)
