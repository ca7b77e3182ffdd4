# Strategy: the TLS twins of issue 10. A twin is a bench.spec.Variant whose
# environment points the server (SERVER_TLS_*) and the agencies (CLI_TLS_*) at
# one contest's credentials. Two placeholders stay in the values, so that the
# variants can be module constants and the page can show them:
#
#   - "{tls}": the credentials directory, made once per `python -m bench` by
#     `prepare` (tools/credentials.py, for the largest fleet) and filled in by
#     `resolve` when a process is started;
#   - "{agency}": the agency id. bench.ingest fills it in per client process;
#     bench.loadgen, which plays many agencies, loads one certificate per
#     agency from the template (`agency_context`).
from __future__ import annotations

import os
import ssl
from collections.abc import Mapping
from pathlib import Path

from bench.spec import Variant
from shared.transport import client_tls_context
from tools.credentials import ensure_credentials

DIRECTORY = "{tls}"
AGENCY = "{agency}"
SERVER_ENV = {
    "SERVER_TLS_CERT": f"{DIRECTORY}/server.pem",
    "SERVER_TLS_KEY": f"{DIRECTORY}/server.key",
    "SERVER_TLS_CA": f"{DIRECTORY}/ca.pem",
}
CLIENT_ENV = {
    "CLI_TLS_CA": f"{DIRECTORY}/ca.pem",
    "CLI_TLS_CERT": f"{DIRECTORY}/agency-{AGENCY}.pem",
    "CLI_TLS_KEY": f"{DIRECTORY}/agency-{AGENCY}.key",
}

#: The directory `prepare` made (one per bench invocation).
_prepared: list[Path] = []


def twin(variant: Variant, name: str, label: str) -> Variant:
    """`variant` with TLS on: the same settings plus the TLS ones."""
    return Variant(name, label, {**variant.server_env, **SERVER_ENV}, {**variant.client_env, **CLIENT_ENV})


def prepare(directory: Path, agencies: int) -> None:
    """Make the credentials of agencies 1..`agencies` in `directory`; later `resolve` calls use it."""
    ensure_credentials(directory, agencies, durable=False)
    _prepared[:] = [directory]


def resolve(env: Mapping[str, str], agency: int | None = None) -> dict[str, str]:
    """`env` with the credentials directory (and, if given, the agency id) filled in.

    Raises:
        RuntimeError: `env` names the credentials, and `prepare` has not run.
    """
    if not _prepared and any(DIRECTORY in value for value in env.values()):
        raise RuntimeError("bench.tls.prepare() must run before a TLS variant is measured")
    resolved = {key: value.replace(DIRECTORY, str(_prepared[0])) if _prepared else value for key, value in env.items()}
    if agency is not None:
        resolved = {key: value.replace(AGENCY, str(agency)) for key, value in resolved.items()}
    return resolved


def agency_context(agency: int, environ: Mapping[str, str] = os.environ) -> ssl.SSLContext | None:
    """For the load generator: agency `agency`'s client context, from CLI_TLS_* templates; None without TLS."""
    if "CLI_TLS_CA" not in environ:
        return None
    paths = resolve({key: environ[key] for key in CLIENT_ENV}, agency)
    return client_tls_context(Path(paths["CLI_TLS_CA"]), Path(paths["CLI_TLS_CERT"]), Path(paths["CLI_TLS_KEY"]))
