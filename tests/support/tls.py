# Strategy: one contest's credentials for the TLS tests, made once per session
# with tools/credentials.py (as a user would), plus the environment that points
# a server or a client at them and a raw TLS peer for tests that speak frames.
#
#   - `Contest.make(directory)`: a CA, the server, agencies 1..5, and agency 6
#     with a certificate that has already expired;
#   - a second Contest (another directory) is "another CA" for the tests;
#   - `tls_peer(port, contest, agency)`: the project's one request/reply peer
#     (ServerConnection) over TLS; agency None presents no client certificate.
from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

from gevent import ssl as gssl

from shared.domain import agency_common_name
from shared.tls import TLS_MINIMUM_VERSION, client_tls_context
from tests.support.wire import RawConnection
from tools.credentials import ensure_credentials

#: Agencies with valid certificates, and the one whose certificate has expired.
AGENCIES = 5
EXPIRED_AGENCY = AGENCIES + 1
REPLY_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class Contest:
    """The credentials of one contest, in `directory` (tools/credentials.py's layout)."""

    directory: Path

    @classmethod
    def make(cls, directory: Path) -> Contest:
        ensure_credentials(directory, AGENCIES)
        ensure_credentials(directory, EXPIRED_AGENCY, expired=True)
        return cls(directory)

    @property
    def ca(self) -> Path:
        return self.directory / "ca.pem"

    def cert(self, agency: int) -> Path:
        return self.directory / f"{agency_common_name(agency)}.pem"

    def key(self, agency: int) -> Path:
        return self.directory / f"{agency_common_name(agency)}.key"

    def server_env(self) -> dict[str, str]:
        """SERVER_TLS_* for a server of this contest."""
        return {
            "SERVER_TLS_CERT": str(self.directory / "server.pem"),
            "SERVER_TLS_KEY": str(self.directory / "server.key"),
            "SERVER_TLS_CA": str(self.ca),
        }

    def client_env(self, agency: int, ca: Path | None = None) -> dict[str, str]:
        """CLI_TLS_* for agency `agency` (trusting `ca` instead of this contest's CA, if given)."""
        cert, key = self.cert(agency), self.key(agency)
        return {"CLI_TLS_CA": str(ca or self.ca), "CLI_TLS_CERT": str(cert), "CLI_TLS_KEY": str(key)}

    def context(self, agency: int | None) -> ssl.SSLContext:
        """A client context trusting this contest's CA; with agency `agency`'s certificate, or none."""
        if agency is not None:
            return client_tls_context(self.ca, self.cert(agency), self.key(agency))
        context: ssl.SSLContext = gssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.minimum_version = TLS_MINIMUM_VERSION
        context.load_verify_locations(cafile=self.ca)
        return context


def tls_peer(port: int, context: ssl.SSLContext, timeout: float = REPLY_TIMEOUT_S) -> RawConnection:
    """A TLS connection to 127.0.0.1:`port`, handshake done (in TLS 1.3 the server may still refuse it after)."""
    return RawConnection.open("127.0.0.1", port, timeout, context)
