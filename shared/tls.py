# TLS as a stream over a stream: an ssl.SSLObject between two MemoryBIOs,
# fed from, and flushed to, the plain Stream below (which alone touches the
# socket). Guarantees: the handshake and every read are bounded only by the
# caller's gevent.Timeouts (nothing the peer sends re-arms them); records that
# decrypt to nothing are waited past; a bare TCP close without close_notify
# reads as EOF, as on a plain socket (our frames are length-prefixed, so a cut
# shows up as a cut frame); errors become shared.errors as in the transport;
# contexts have a TLS 1.3 floor, require the peer's certificate, and clients check the host name.
# Never: sends or receives except through the inner Stream.
from __future__ import annotations

import ssl
import struct
from pathlib import Path
from typing import cast

from shared.errors import ConfigError, PeerClosed, ProtocolError
from shared.transport import Stream, translated, within

#: Raw bytes asked of the inner stream per read: many records at once.
RAW_CHUNK = 65536
TLS_HANDSHAKE_BYTE = 0x16  # the first byte of a TLS handshake record
#: A plaintext fatal alert (handshake_failure): a server with TLS off answers a ClientHello with it.
TLS_HANDSHAKE_FAILURE_ALERT = bytes([0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 40])
_TLS_RECORD_HEADER = struct.Struct(">BHH")
_TLS_MAX_RECORD = 2**14


class TlsStream(Stream):
    """A Stream whose bytes are TLS records on `inner` (see `start_tls`)."""

    def __init__(self, inner: Stream, tls: ssl.SSLObject, incoming: ssl.MemoryBIO, outgoing: ssl.MemoryBIO) -> None:
        self._inner, self._tls, self._incoming, self._outgoing = inner, tls, incoming, outgoing
        self.bytes_received = inner.bytes_received
        certificate = tls.getpeercert() or {}
        subject = cast(tuple[tuple[tuple[str, str], ...], ...], certificate.get("subject", ()))
        names = [value for rdn in subject for key, value in rdn if key == "commonName"]
        self._peer_name = names[0] if len(names) == 1 else ""
        #: The peer certificate's serial number (0: none), for revocation.
        self.peer_serial = int(str(certificate.get("serialNumber", "0")), 16)
        #: Plaintext read ahead by peek_byte, returned by the next read.
        self._held = b""

    @property
    def peer_name(self) -> str | None:
        return self._peer_name

    def settimeout(self, timeout: float | None) -> None:
        self._inner.settimeout(timeout)

    def close(self) -> None:
        self._inner.close()

    def send_all(self, data: bytes) -> None:
        with translated("send", expected=len(data)):
            self._tls.write(data)  # into a memory BIO: never blocks
        self._inner.send_all(self._outgoing.read())

    def recv_some(self, size: int, partial: bytes = b"", expected: int = 0) -> bytes:
        if self._held:
            held, self._held = self._held[:size], self._held[size:]
            return held
        while True:
            with translated("recv", partial, expected):
                try:
                    return self._tls.read(size)
                except ssl.SSLWantReadError:
                    pass
                except (ssl.SSLEOFError, ssl.SSLZeroReturnError):  # with or without close_notify: EOF
                    return b""
            if self._incoming.eof:
                return b""
            if self._outgoing.pending:  # a reply OpenSSL owes the peer (a key update)
                self._inner.send_all(self._outgoing.read())
            _feed(self._inner, self._incoming, partial, expected)
            self.bytes_received = self._inner.bytes_received

    def peek_byte(self) -> bytes:
        if not self._held:
            self._held = self.recv_some(1, expected=1)
        return self._held[:1]


def _feed(inner: Stream, incoming: ssl.MemoryBIO, partial: bytes = b"", expected: int = 0) -> None:
    """Move what the peer sent next into `incoming`; at EOF, mark it there."""
    raw = inner.recv_some(RAW_CHUNK, partial, expected)
    if raw:
        incoming.write(raw)
    else:
        incoming.write_eof()


def start_tls(stream: Stream, context: ssl.SSLContext, server_hostname: str | None = None) -> TlsStream:
    """Run a TLS handshake over `stream` (a server's if no `server_hostname`); on failure, close it.

    Bound it with a gevent.Timeout (shared.transport.within): nothing here does.

    Raises:
        TlsRejected: a certificate did not verify, or the peer refused ours.
        PeerClosed: the connection broke, or the peer spoke no TLS.
    """
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = context.wrap_bio(incoming, outgoing, server_side=server_hostname is None, server_hostname=server_hostname)
    try:
        while True:
            try:
                with translated("TLS handshake"):
                    try:
                        tls.do_handshake()
                        break
                    except ssl.SSLWantReadError:
                        pass
            finally:
                if outgoing.pending:  # our flight, or the alert that tells the peer why we gave up
                    _send_quietly(stream, outgoing.read())
            _feed(stream, incoming)
            if incoming.eof:
                raise PeerClosed()
    except BaseException:
        stream.close()
        raise
    return TlsStream(stream, tls, incoming, outgoing)


def _send_quietly(stream: Stream, data: bytes) -> None:
    try:
        stream.send_all(data)
    except PeerClosed:  # the read that follows reports it; a deadline (Timeout) must not be swallowed
        pass


def refuse_tls_handshake(stream: Stream, timeout: float) -> None:
    """Read the peer's first TLS record whole (so that closing sends no RST), then send a fatal alert.

    Raises:
        ProtocolError: the record declares more than a TLS record may hold (nothing more is read).
        PeerClosed, Timeout.
    """
    with within(timeout, f"TLS record not complete within {timeout}s"):
        _, _, length = _TLS_RECORD_HEADER.unpack(stream.recv_exact(_TLS_RECORD_HEADER.size))
        if length > _TLS_MAX_RECORD:
            raise ProtocolError(f"a TLS record of {length} bytes; the most is {_TLS_MAX_RECORD}")
        stream.recv_exact(length)
        stream.send_all(TLS_HANDSHAKE_FAILURE_ALERT)


#: The oldest TLS version either end accepts: before 1.3 the agency's certificate travels in clear.
TLS_MINIMUM_VERSION = ssl.TLSVersion.TLSv1_3


def _tls_context(protocol: int, cert: Path, key: Path, ca: Path) -> ssl.SSLContext:
    """TLS 1.3 or newer, our certificate, the peer's required (ConfigError if a file is bad)."""
    try:
        context = ssl.SSLContext(protocol)
        context.minimum_version = TLS_MINIMUM_VERSION
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(cafile=ca)
        context.load_cert_chain(cert, key)
    except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
        raise ConfigError(f"cannot load the TLS credentials ({cert}, {key}, {ca}): {exc}") from exc
    return context


def server_tls_context(cert: Path, key: Path, ca: Path) -> ssl.SSLContext:
    """The server's side: a client certificate signed by `ca` required."""
    context = _tls_context(ssl.PROTOCOL_TLS_SERVER, cert, key, ca)
    context.num_tickets = 0  # agencies never resume a TLS session
    return context


def client_tls_context(ca: Path, cert: Path, key: Path) -> ssl.SSLContext:
    """An agency's side: the server's certificate signed by `ca`, for the host dialled (TLS_CLIENT's default)."""
    return _tls_context(ssl.PROTOCOL_TLS_CLIENT, cert, key, ca)
