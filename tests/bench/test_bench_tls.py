"""bench.tls: the TLS twins' settings, filled in per process and per agency."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bench import tls
from bench.spec import Variant

pytestmark = pytest.mark.bench


@pytest.fixture
def prepared(tmp_path: Path) -> Iterator[Path]:
    tls.prepare(tmp_path / "tls", 2)
    yield tmp_path / "tls"
    tls._prepared.clear()


def test_a_twin_keeps_the_settings_and_adds_tls() -> None:
    twin = tls.twin(Variant("durable", "durable", {"SERVER_FSYNC": "true"}, {"CLI_X": "1"}), "tls", "TLS")

    assert (twin.name, twin.label) == ("tls", "TLS")
    assert twin.server_env == {"SERVER_FSYNC": "true", **tls.SERVER_ENV}
    assert twin.client_env == {"CLI_X": "1", **tls.CLIENT_ENV}


def test_resolve_fills_in_the_directory_and_the_agency(prepared: Path) -> None:
    env = tls.resolve(tls.CLIENT_ENV, agency=2)

    assert env == {
        "CLI_TLS_CA": f"{prepared}/ca.pem",
        "CLI_TLS_CERT": f"{prepared}/agency-2.pem",
        "CLI_TLS_KEY": f"{prepared}/agency-2.key",
    }
    assert all(Path(path).is_file() for path in env.values())
    assert tls.resolve({"SERVER_FSYNC": "true"}) == {"SERVER_FSYNC": "true"}


def test_the_load_generator_loads_each_agency_certificate(prepared: Path) -> None:
    environ = tls.resolve(tls.CLIENT_ENV)  # what the generator's environment holds: {agency} left in

    assert tls.agency_context(2, environ) is not None
    assert tls.agency_context(2, {}) is None  # the plaintext twin


def test_a_tls_variant_without_credentials_is_an_error() -> None:
    with pytest.raises(RuntimeError, match="prepare"):
        tls.resolve(tls.SERVER_ENV)
