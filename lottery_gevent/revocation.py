# The server's TLS credentials as one context, and the contest CA's revocation
# list. Guarantees: `tls_context` checks the agency certificates against
# SERVER_TLS_CRL (if set) on every handshake; a bad file is a ConfigError that
# names the file, never its content; it also gives the serial numbers the list
# revokes, for ending the live sessions of revoked agencies.
# Never: holds state (the server swaps the context on SIGHUP).
from __future__ import annotations

import ssl
from pathlib import Path

from lottery_gevent.config import ServerConfig
from shared.errors import ConfigError
from shared.tls import server_tls_context


def tls_context(config: ServerConfig) -> tuple[ssl.SSLContext | None, frozenset[int]]:
    """The server's context (None: TLS off) and the serials its list revokes. ConfigError if a file is bad."""
    if config.tls_cert is None or config.tls_key is None or config.tls_ca is None:
        return None, frozenset()
    context = server_tls_context(config.tls_cert, config.tls_key, config.tls_ca)
    revoked: frozenset[int] = frozenset()
    if config.tls_crl is not None:
        revoked = revoked_serials(config.tls_crl)  # a list that does not parse is refused here, not per handshake
        try:
            context.load_verify_locations(cafile=config.tls_crl)
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot load the revocation list {config.tls_crl}: {exc}") from exc
        context.verify_flags |= ssl.VERIFY_CRL_CHECK_LEAF
    return context, revoked


def revoked_serials(crl: Path) -> frozenset[int]:
    """The serial numbers `crl` revokes. Raises ConfigError if it cannot be read as a PEM CRL."""
    from cryptography import x509  # only with a revocation list: the server otherwise needs the standard library

    try:
        revocations = x509.load_pem_x509_crl(crl.read_bytes())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot load the revocation list {crl}: {exc}") from exc
    return frozenset(entry.serial_number for entry in revocations)
