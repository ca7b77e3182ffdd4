"""TLS credentials for one contest: a CA, the server's certificate, one per agency.

    python3 -m tools.credentials DIR --agencies N [--server-name NAME ...] [--days D] [--expired]
    python3 -m tools.credentials DIR --revoke K [--revoke K ...]

Writes into DIR (created 0700 if missing):
    ca.pem, ca.key                 the contest CA (self-signed)
    server.pem, server.key         SANs: server, localhost, 127.0.0.1 and each --server-name
    agency-K.pem, agency-K.key     subject CN agency-K, for K = 1..N
    crl.pem                        the CA's revocation list (SERVER_TLS_CRL): empty, until
                                   --revoke K adds agency-K's certificate (then SIGHUP the server)

Existing files are kept: run it again with a larger N to add agencies. A key is
never overwritten; a missing certificate is issued for the key already there.
"""

# Strategy: X.509 with the `cryptography` package (pinned in requirements.txt),
# ECDSA P-256 keys (small, and cheap to sign and verify in a TLS 1.3 handshake).
# Every file is written to a temporary name and then hard-linked into place,
# which fails if the name exists: a crash never leaves half a key, and a second
# run racing the first never replaces one. Only crl.pem is ever rewritten, in
# place (--revoke), so that a Compose bind mount of it sees the new list. Keys are mode 0600; run as root, they
# are also given to the containers' user (uid 10001), which must read them from
# the Compose secrets mounts; ca.key stays with whoever ran the tool, since no
# container needs it. The module imports only the standard library,
# `cryptography` and shared.domain, so generar-compose.sh can pipe it into the
# client image (`python3 - DIR ...`) when the host lacks `cryptography`.
from __future__ import annotations

import argparse
import datetime
import ipaddress
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from shared.domain import agency_common_name

#: The user the server and client images run as (docker/*.Dockerfile).
CONTAINER_UID = 10001
DEFAULT_DAYS = 365
#: The server certificate's names; --server-name adds more.
SERVER_NAMES = ("server", "localhost", "127.0.0.1")
CA_NAME = "Loteria Nacional contest CA"
#: Backdating of notBefore, for clocks a little behind ours.
CLOCK_SKEW = datetime.timedelta(hours=1)

PrivateKey = ec.EllipticCurvePrivateKey


class CredentialsError(Exception):
    """DIR holds files that do not fit together (e.g. a certificate without its CA key)."""


class _Files:
    """Writes new files into DIR, and remembers which.

    Args:
        uid: owner given to leaf keys and certificates (None: whoever runs the tool).
        durable: fsync each file before it is linked into place.
    """

    def __init__(self, uid: int | None, durable: bool) -> None:
        self.uid = uid
        self.durable = durable
        self.created: list[Path] = []

    def write(self, path: Path, data: bytes, mode: int, uid: int | None) -> None:
        """Create `path` with `data`; fails (FileExistsError) rather than replace it."""
        descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        try:
            with os.fdopen(descriptor, "wb") as file:
                file.write(data)
                file.flush()
                if self.durable:
                    os.fsync(file.fileno())
            os.chmod(temporary, mode)
            if uid is not None:
                os.chown(temporary, uid, uid)
            os.link(temporary, path)
        finally:
            os.unlink(temporary)
        self.created.append(path)

    def key(self, path: Path, uid: int | None) -> PrivateKey:
        """The key at `path`, made (and written 0600) if missing."""
        if path.exists():
            key = serialization.load_pem_private_key(path.read_bytes(), password=None)
            if not isinstance(key, PrivateKey):
                raise CredentialsError(f"{path} is not an EC private key")
            return key
        key = ec.generate_private_key(ec.SECP256R1())
        encoding, pkcs8 = serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8
        self.write(path, key.private_bytes(encoding, pkcs8, serialization.NoEncryption()), 0o600, uid)
        return key


def _validity(days: int, expired: bool) -> tuple[datetime.datetime, datetime.datetime]:
    now = datetime.datetime.now(datetime.UTC)
    if expired:  # for tests: a certificate that was valid until yesterday
        return now - datetime.timedelta(days=days + 1), now - datetime.timedelta(days=1)
    return now - CLOCK_SKEW, now + datetime.timedelta(days=days)


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _san(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


class _Issuer:
    """The contest CA of one DIR, loaded or made."""

    def __init__(self, directory: Path, days: int, files: _Files) -> None:
        self.key = files.key(directory / "ca.key", None)
        path = directory / "ca.pem"
        if path.exists():
            self.cert = x509.load_pem_x509_certificate(path.read_bytes())
            if self.cert.public_key() != self.key.public_key():
                raise CredentialsError(f"{path} does not belong to {directory / 'ca.key'}")
            return
        start, end = _validity(days, expired=False)
        name = _name(CA_NAME)
        builder = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(end)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(_usage(ca=True), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(self.key.public_key()), critical=False)
        )
        self.cert = builder.sign(self.key, hashes.SHA256())
        files.write(path, self.cert.public_bytes(serialization.Encoding.PEM), 0o644, files.uid)

    def issue(
        self, key: PrivateKey, common_name: str, sans: Sequence[str], days: int, expired: bool
    ) -> x509.Certificate:
        """A leaf certificate for `key`: a server one when `sans` is given, else a client one."""
        start, end = _validity(days, expired)
        usage = ExtendedKeyUsageOID.SERVER_AUTH if sans else ExtendedKeyUsageOID.CLIENT_AUTH
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(common_name))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(end)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_usage(ca=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()), critical=False)
        )
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName([_san(name) for name in sans]), critical=False)
        return builder.sign(self.key, hashes.SHA256())


def _usage(ca: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not ca,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


def ensure_credentials(
    directory: Path,
    agencies: int,
    server_names: Sequence[str] = (),
    days: int = DEFAULT_DAYS,
    expired: bool = False,
    uid: int | None = None,
    durable: bool = True,
) -> list[Path]:
    """Make whatever of the contest's credentials is missing in `directory`.

    Args:
        directory: where the files live (created, mode 0700, if missing).
        agencies: make sure agency-1..agency-N exist.
        server_names: more names (DNS or IP) for the server certificate's SANs.
        days: how long new certificates are valid.
        expired: new leaf certificates (server, agencies) have already expired (for tests).
        uid: owner given to new leaf keys and certificates (None: leave them to the caller).
        durable: fsync every file written (off: thousands of throwaway agencies, for benchmarks).

    Returns:
        The files created, in order.

    Raises:
        CredentialsError: the files already there do not fit together.
        OSError: a file could not be written.
    """
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        directory.chmod(0o700)  # also when it was made elsewhere (a Docker bind mount): only its owner enters
    except PermissionError:
        pass
    files = _Files(uid, durable)
    issuer = _Issuer(directory, days, files)
    leaves = [("server", "server", [*SERVER_NAMES, *server_names])]
    leaves += [(agency_common_name(k), agency_common_name(k), []) for k in range(1, agencies + 1)]
    for stem, common_name, sans in leaves:
        key = files.key(directory / f"{stem}.key", uid)
        cert_path = directory / f"{stem}.pem"
        if cert_path.exists():
            continue
        cert = issuer.issue(key, common_name, sans, days, expired)
        files.write(cert_path, cert.public_bytes(serialization.Encoding.PEM), 0o644, uid)
    if not (directory / "crl.pem").exists():
        _write_crl(issuer, directory / "crl.pem", [], days, uid)
        files.created.append(directory / "crl.pem")
    return files.created


def _write_crl(issuer: _Issuer, path: Path, serials: Sequence[int], days: int, uid: int | None) -> None:
    """Sign a list revoking `serials` and write it to `path`: in place if it exists (a Compose bind
    mount keeps the file's inode), else as a new file."""
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(issuer.cert.subject)
        .last_update(now - CLOCK_SKEW)
        .next_update(now + datetime.timedelta(days=days))
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()), critical=False)
    )
    for serial in serials:
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(now).build()
        )
    data = builder.sign(issuer.key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)
    if not path.exists():
        _Files(uid, durable=True).write(path, data, 0o644, uid)
        return
    with open(path, "r+b") as file:
        file.truncate(0)
        file.write(data)
        file.flush()
        os.fsync(file.fileno())


def revoke(directory: Path, agencies: Sequence[int], days: int = DEFAULT_DAYS) -> list[int]:
    """Add the certificates of `agencies` to DIR/crl.pem, signed by the contest CA; returns every revoked serial.

    Raises:
        CredentialsError: DIR has no CA, or no certificate for one of `agencies`.
    """
    if not (directory / "ca.key").exists() or not (directory / "ca.pem").exists():
        raise CredentialsError(f"{directory} has no contest CA (ca.pem, ca.key) to sign a revocation list")
    issuer = _Issuer(directory, days, _Files(None, durable=True))
    crl = directory / "crl.pem"
    serials = [entry.serial_number for entry in x509.load_pem_x509_crl(crl.read_bytes())] if crl.exists() else []
    for agency in agencies:
        cert = directory / f"{agency_common_name(agency)}.pem"
        if not cert.exists():
            raise CredentialsError(f"{cert} does not exist: agency {agency} has no certificate to revoke")
        serial = x509.load_pem_x509_certificate(cert.read_bytes()).serial_number
        serials += [serial] if serial not in serials else []
    _write_crl(issuer, crl, serials, days, None)
    return serials


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, not {text!r}")
    return int(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python3 -m tools.credentials",
        description=__doc__.splitlines()[0] if __doc__ else None,
        epilog="Existing files are kept; a key is never overwritten. For a new contest, use a new DIR.",
    )
    parser.add_argument("directory", type=Path, help="where the credentials live (e.g. .secrets)")
    parser.add_argument("--agencies", type=int, help="agencies 1..N get a certificate")
    parser.add_argument(
        "--revoke", type=_positive, action="append", metavar="K", help="revoke agency-K's certificate (repeatable)"
    )
    parser.add_argument("--server-name", action="append", default=[], help="another SAN for the server (repeatable)")
    parser.add_argument("--days", type=_positive, default=DEFAULT_DAYS, help="validity of new certificates")
    parser.add_argument("--expired", action="store_true", help="new leaf certificates are already expired (tests)")
    args = parser.parse_args(argv)
    if args.revoke:
        try:
            serials = revoke(args.directory, args.revoke, args.days)
        except (CredentialsError, OSError, ValueError) as exc:
            print(f"credentials: {exc}", file=sys.stderr)
            return 1
        print(f"credentials: {args.directory / 'crl.pem'} revokes {len(serials)} certificates; send the server SIGHUP")
        return 0
    if args.agencies is None or args.agencies < 0:
        parser.error("--agencies N (0 or more) is required, unless --revoke is given")
    # As root, give the containers' user its keys; anyone else keeps them (a local run).
    uid = CONTAINER_UID if os.geteuid() == 0 else None
    try:
        created = ensure_credentials(args.directory, args.agencies, args.server_name, args.days, args.expired, uid)
    except (CredentialsError, OSError, ValueError) as exc:
        print(f"credentials: {exc}", file=sys.stderr)
        return 1
    for path in created:
        print(f"credentials: created {path}")
    print(f"credentials: {args.directory} has the CA, the server and agencies 1..{args.agencies}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
