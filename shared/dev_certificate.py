"""A development C2PA signing certificate: a local root CA and a leaf it signed.

C2PA refuses self-signed signing certificates and wants, of the leaf, the digitalSignature
key usage and an extended key usage (here emailProtection and documentSigning). Outside
production, when no C2PA_CERT_PATH / C2PA_KEY_PATH is set, weave signs with one of these,
made once under `<data_dir>/c2pa/` (EC P-256, ES256). Validators report it as untrusted:
it proves nothing about who made an image, only that the manifest is intact.
"""

from __future__ import annotations

import logging
import os
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Final

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

log = logging.getLogger(__name__)

CHAIN_FILE: Final = "chain.pem"  # the leaf, then the root CA
KEY_FILE: Final = "signer.key"  # the leaf's private key (PKCS#8 PEM)
CA_KEY_FILE: Final = "ca.key"
LEAF_DAYS: Final = 825
CA_DAYS: Final = 3650


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Proteus development (untrusted)"),
        ]
    )


def _usage(*, signer: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=signer,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=not signer,
        crl_sign=not signer,
        encipher_only=False,
        decipher_only=False,
    )


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def make_dev_credentials(now: datetime | None = None) -> tuple[bytes, bytes, bytes]:
    """(chain PEM: leaf then root, leaf key PEM, root key PEM), freshly generated."""
    now = now or datetime.now(UTC)
    start = now - timedelta(minutes=5)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name("Proteus development root CA")
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(now + timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_usage(signer=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(_name("Proteus development signer"))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(now + timedelta(days=LEAF_DAYS))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_usage(signer=True), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.EMAIL_PROTECTION, x509.ObjectIdentifier("1.3.6.1.4.1.311.10.3.12")]
            ),
            critical=False,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    chain = leaf.public_bytes(serialization.Encoding.PEM) + ca.public_bytes(serialization.Encoding.PEM)
    return chain, _pem_key(key), _pem_key(ca_key)


def dev_credentials(data_dir: str | Path) -> tuple[Path, Path]:
    """(chain path, key path) under `<data_dir>/c2pa`, generated on first use and kept.

    Written into a temporary folder and renamed into place, so processes starting together
    all end up with the same pair (the loser of the rename uses the winner's)."""
    folder = Path(data_dir) / "c2pa"
    chain, key = folder / CHAIN_FILE, folder / KEY_FILE
    if chain.exists() and key.exists():
        return chain, key
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".c2pa-", dir=folder.parent))
    chain_pem, key_pem, ca_key_pem = make_dev_credentials()
    for name, content in ((CHAIN_FILE, chain_pem), (KEY_FILE, key_pem), (CA_KEY_FILE, ca_key_pem)):
        path = staging / name
        path.write_bytes(content)
        if name != CHAIN_FILE:
            path.chmod(0o600)
    try:
        os.rename(staging, folder)
        log.warning("C2PA: generated a development signing certificate in %s (untrusted; development only)", folder)
    except OSError:  # another process made it first
        for path in staging.iterdir():
            path.unlink()
        staging.rmdir()
    return chain, key
