"""TLS helpers shared by probe types: client contexts, handshake timing, certificate expiry."""

from __future__ import annotations

import datetime as dt
import ssl
import time


class HandshakeClock:
    """When the last TLS handshake started and finished (the tls phase), and the peer's certificate."""

    __slots__ = ("started", "finished", "peer_cert")

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.started: float | None = None
        self.finished: float | None = None
        self.peer_cert: bytes | None = None

    def cert_expiry(self) -> float | None:
        """Unix time of the peer certificate's notAfter, if a handshake completed."""
        if not self.peer_cert:
            return None
        try:
            return cert_not_after(self.peer_cert)
        except (IndexError, ValueError):
            return None


class _TimedSSLObject(ssl.SSLObject):
    # asyncio calls do_handshake() as soon as TCP is up and again on every read
    # until it completes, so the first call marks the end of connect and the
    # successful one the end of TLS.
    def do_handshake(self) -> None:
        clock: HandshakeClock | None = getattr(self.context, "handshake_clock", None)
        if clock is not None and clock.started is None:
            clock.started = time.perf_counter()
        super().do_handshake()
        if clock is not None:
            clock.finished = time.perf_counter()
            # Read here, not from the response: aiohttp may release the connection before we look.
            clock.peer_cert = self.getpeercert(binary_form=True)


def client_context(
    verify: bool = True,
    ca_file: str | None = None,
    cert_file: str | None = None,
    key_file: str | None = None,
) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=ca_file)
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if cert_file:
        context.load_cert_chain(cert_file, key_file)
    context.sslobject_class = _TimedSSLObject
    return context


def _der_item(data: bytes, pos: int) -> tuple[int, int, int]:
    """Return (tag, content start, content end) of the DER item at pos."""
    tag = data[pos]
    length = data[pos + 1]
    pos += 2
    if length & 0x80:
        count = length & 0x7F
        length = int.from_bytes(data[pos : pos + count], "big")
        pos += count
    return tag, pos, pos + length


def cert_not_after(der: bytes) -> float:
    """Unix time of a DER certificate's notAfter. Works on unverified peers, where getpeercert() is empty."""
    _, cert, _ = _der_item(der, 0)  # Certificate
    _, pos, _ = _der_item(der, cert)  # TBSCertificate
    if der[pos] == 0xA0:  # explicit version
        pos = _der_item(der, pos)[2]
    for _ in range(3):  # serialNumber, signature, issuer
        pos = _der_item(der, pos)[2]
    _, validity, _ = _der_item(der, pos)
    not_after = _der_item(der, validity)[2]
    tag, start, stop = _der_item(der, not_after)
    text = der[start:stop].decode("ascii")
    fmt = "%y%m%d%H%M%SZ" if tag == 0x17 else "%Y%m%d%H%M%SZ"
    return dt.datetime.strptime(text, fmt).replace(tzinfo=dt.timezone.utc).timestamp()
