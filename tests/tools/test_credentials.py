"""tools/credentials.py: what it writes, and that a second run keeps every key."""

from __future__ import annotations

import datetime
import ipaddress
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from shared.domain import agency_common_name
from tools.credentials import CredentialsError, ensure_credentials, main


def cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def common_name(certificate: x509.Certificate) -> str:
    return str(certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value)


def test_writes_a_ca_a_server_and_one_certificate_per_agency(tmp_path: Path) -> None:
    created = ensure_credentials(tmp_path / "s", 2, ["lottery.example", "10.0.0.7"])

    names = ["ca.key", "ca.pem", "server.key", "server.pem", "agency-1.key", "agency-1.pem"]
    assert [path.name for path in created] == [*names, "agency-2.key", "agency-2.pem", "crl.pem"]
    assert (tmp_path / "s").stat().st_mode & 0o777 == 0o700
    ca = cert(tmp_path / "s" / "ca.pem")
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    server = cert(tmp_path / "s" / "server.pem")
    server.verify_directly_issued_by(ca)
    sans = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == ["server", "localhost", "lottery.example"]
    assert sans.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address(ip) for ip in ("127.0.0.1", "10.0.0.7")]
    for k in (1, 2):
        agency = cert(tmp_path / "s" / f"agency-{k}.pem")
        agency.verify_directly_issued_by(ca)
        assert common_name(agency) == agency_common_name(k) == f"agency-{k}"
        usage = agency.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        assert list(usage) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    for path in created:
        assert path.stat().st_mode & 0o777 == (0o600 if path.suffix == ".key" else 0o644)


def test_a_second_run_keeps_every_file_and_adds_missing_agencies(tmp_path: Path) -> None:
    ensure_credentials(tmp_path, 1)
    before = {path.name: path.read_bytes() for path in tmp_path.iterdir()}

    assert ensure_credentials(tmp_path, 1) == []
    created = ensure_credentials(tmp_path, 3)

    assert [path.name for path in created] == ["agency-2.key", "agency-2.pem", "agency-3.key", "agency-3.pem"]
    assert {path.name: path.read_bytes() for path in tmp_path.iterdir() if path.name in before} == before
    cert(tmp_path / "agency-3.pem").verify_directly_issued_by(cert(tmp_path / "ca.pem"))


def test_a_missing_certificate_is_issued_for_the_key_already_there(tmp_path: Path) -> None:
    ensure_credentials(tmp_path, 1)
    key = (tmp_path / "agency-1.key").read_bytes()
    (tmp_path / "agency-1.pem").unlink()

    assert [path.name for path in ensure_credentials(tmp_path, 1)] == ["agency-1.pem"]

    assert (tmp_path / "agency-1.key").read_bytes() == key
    private = serialization.load_pem_private_key(key, password=None)
    assert cert(tmp_path / "agency-1.pem").public_key() == private.public_key()


def test_expired_makes_new_leaf_certificates_already_expired(tmp_path: Path) -> None:
    ensure_credentials(tmp_path, 1)
    ensure_credentials(tmp_path, 2, expired=True)

    now = datetime.datetime.now(datetime.UTC)
    assert cert(tmp_path / "agency-2.pem").not_valid_after_utc < now
    assert cert(tmp_path / "agency-1.pem").not_valid_after_utc > now
    assert cert(tmp_path / "ca.pem").not_valid_after_utc > now


def test_a_ca_certificate_without_its_key_is_refused(tmp_path: Path) -> None:
    ensure_credentials(tmp_path / "a", 0)
    ensure_credentials(tmp_path / "b", 0)
    (tmp_path / "b" / "ca.pem").unlink()
    (tmp_path / "b" / "ca.pem").write_bytes((tmp_path / "a" / "ca.pem").read_bytes())

    with pytest.raises(CredentialsError, match="does not belong"):
        ensure_credentials(tmp_path / "b", 1)


def test_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(tmp_path / "s"), "--agencies", "1", "--days", "30"]) == 0
    assert "created" in capsys.readouterr().out
    assert main([str(tmp_path / "s"), "--agencies", "1"]) == 0
    assert "created" not in capsys.readouterr().out
    validity = cert(tmp_path / "s" / "agency-1.pem")
    assert (validity.not_valid_after_utc - validity.not_valid_before_utc).days == 30


def test_without_fsync_the_same_files_are_made(tmp_path: Path) -> None:
    created = ensure_credentials(tmp_path, 2, durable=False)  # the benchmarks' thousands of agencies

    assert sorted(path.name for path in created) == sorted(path.name for path in tmp_path.iterdir())
    cert(tmp_path / "agency-2.pem").verify_directly_issued_by(cert(tmp_path / "ca.pem"))


def test_command_line_server_names_that_are_addresses_become_ip_sans(tmp_path: Path) -> None:
    names = ["10.231.7.1", "fd00::1", "lottery.example"]  # a veth host end, an IPv6 one, a DNS name
    argv = [str(tmp_path), "--agencies", "0", *(f"--server-name={name}" for name in names)]

    assert main(argv) == 0

    sans = cert(tmp_path / "server.pem").extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    addresses = [ipaddress.ip_address(ip) for ip in ("127.0.0.1", "10.231.7.1", "fd00::1")]
    assert sans.get_values_for_type(x509.IPAddress) == addresses
    assert sans.get_values_for_type(x509.DNSName) == ["server", "localhost", "lottery.example"]


def crl_serials(directory: Path) -> set[int]:
    crl = x509.load_pem_x509_crl((directory / "crl.pem").read_bytes())
    assert crl.is_signature_valid(cert(directory / "ca.pem").public_key())  # type: ignore[arg-type]
    return {entry.serial_number for entry in crl}


def test_an_empty_revocation_list_comes_with_the_credentials(tmp_path: Path) -> None:
    ensure_credentials(tmp_path / "s", 2)
    assert crl_serials(tmp_path / "s") == set()


def test_revoke_adds_agencies_to_the_list_in_place(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    directory = tmp_path / "s"
    ensure_credentials(directory, 3)
    inode = (directory / "crl.pem").stat().st_ino
    assert main([str(directory), "--revoke", "2"]) == 0
    assert main([str(directory), "--revoke", "3", "--revoke", "2"]) == 0
    serials = {cert(directory / f"agency-{k}.pem").serial_number for k in (2, 3)}
    assert crl_serials(directory) == serials
    assert (directory / "crl.pem").stat().st_ino == inode  # a Compose bind mount of the file sees the new list
    assert "send the server SIGHUP" in capsys.readouterr().out


def test_revoke_refuses_an_agency_without_a_certificate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ensure_credentials(tmp_path / "s", 1)
    assert main([str(tmp_path / "s"), "--revoke", "4"]) == 1
    assert "agency 4 has no certificate" in capsys.readouterr().err


def test_an_existing_directory_is_closed_to_everyone_but_its_owner(tmp_path: Path) -> None:
    directory = tmp_path / "s"
    directory.mkdir(mode=0o755)  # as `mkdir -p` leaves it, before a Docker run of the tool
    ensure_credentials(directory, 1)
    assert directory.stat().st_mode & 0o777 == 0o700
    assert all((directory / name).stat().st_mode & 0o777 == 0o600 for name in ("ca.key", "server.key", "agency-1.key"))
