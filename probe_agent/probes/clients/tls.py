"""TLS helpers shared by probe types: client contexts, handshake timing, certificate expiry.

A client context costs about 30 ms of CPU and 0.85 MB (it loads the system CA
bundle), so contexts are shared: one per distinct setting, built once, never
mutated after, used by every probe with that setting. Handshake timing is
therefore not kept on the context but in a per-run HandshakeClock that the
probe puts in a context variable; asyncio and uvloop run a connection's
protocol callbacks in a copy of the context the connection was opened in.
"""

from __future__ import annotations

import contextvars
import datetime as dt
import os
import ssl
import threading
import time
import weakref

from probe_agent.core.files import NamedFileError, check_named_file, read_named_file


class HandshakeClock:
    """When the last TLS handshake started and finished (the tls phase), the peer's certificate,
    and the address connected to: what one run learns below the HTTP client, per run."""

    __slots__ = ("address", "cipher", "finished", "peer_cert", "started", "version")

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.started: float | None = None
        self.finished: float | None = None
        self.peer_cert: bytes | None = None
        self.version: str | None = None  # "TLSv1.3", as ssl says it
        self.cipher: str | None = None
        self.address: str | None = None  # the address a host name resolved to (httpclient's resolver)

    def cert_expiry(self) -> float | None:
        """Unix time of the peer certificate's notAfter, if a handshake completed."""
        if not self.peer_cert:
            return None
        try:
            return cert_not_after(self.peer_cert)
        except (IndexError, ValueError):
            return None


# The clock of the probe run whose connection is handshaking, if it wants one.
HANDSHAKE_CLOCK: contextvars.ContextVar[HandshakeClock | None] = contextvars.ContextVar("handshake_clock", default=None)


class TimedSSLObject(ssl.SSLObject):
    # asyncio calls do_handshake() as soon as TCP is up and again on every read
    # until it completes, so the first call marks the end of connect and the
    # successful one the end of TLS.
    def do_handshake(self) -> None:
        clock = HANDSHAKE_CLOCK.get()
        if clock is not None and clock.started is None:
            clock.started = time.perf_counter()
        super().do_handshake()
        if clock is not None:
            clock.finished = time.perf_counter()
            # Read here, not from the response: aiohttp may release the connection before we look.
            clock.peer_cert = self.getpeercert(binary_form=True)
            clock.version = self.version()
            cipher = self.cipher()
            clock.cipher = cipher[0] if cipher else None


class TlsFileError(ValueError):
    """A CA, certificate or key file named in the config cannot be used; names the field."""


_contexts: weakref.WeakValueDictionary[tuple[object, ...], ssl.SSLContext] = weakref.WeakValueDictionary()
_contexts_lock = threading.Lock()  # configs are built in a worker thread


def _file_key(path: str | None) -> tuple[str, int, int] | None:
    # A file replaced in place (a renewed CA, a rotated client certificate) gives a new
    # context on the next reload; an unchanged one keeps sharing the old.
    if not path:
        return None
    try:
        st = os.stat(path)
    except OSError:
        return (path, -1, -1)
    return (path, st.st_mtime_ns, st.st_size)


_file_bytes: dict[tuple[str, int, int] | None, bytes] = {}


def named_file_bytes(path: str, field: str) -> bytes:
    """The bytes of a CA, certificate or key file the config names, for a client that is handed
    them rather than a path (libcurl's *_BLOB options): read at load, bounded and never from a
    FIFO (core.files), once per version of the file (path, mtime, size) and shared by every probe
    naming it, so a run never opens the file on the loop. TlsFileError names the field."""
    key = _file_key(path)
    with _contexts_lock:
        found = _file_bytes.get(key)
    if found is None:
        try:
            found = read_named_file(path, field)
        except NamedFileError as exc:
            raise TlsFileError(str(exc)) from None
        with _contexts_lock:
            if len(_file_bytes) >= 256:  # old versions of rotated files: the probes keep theirs
                _file_bytes.clear()
            _file_bytes[key] = found
    return found


def client_context(
    verify: bool = True,
    ca_file: str | None = None,
    cert_file: str | None = None,
    key_file: str | None = None,
    check_hostname: bool | None = None,
) -> ssl.SSLContext:
    """The shared client context for this setting. Callers must not change it.

    check_hostname defaults to `verify`. Raises TlsFileError naming the field of a
    file that cannot be read or parsed."""
    check_hostname = verify if check_hostname is None else check_hostname and verify
    key = (verify, check_hostname, _file_key(ca_file), _file_key(cert_file), _file_key(key_file))
    with _contexts_lock:
        context = _contexts.get(key)
        if context is None:
            context = _contexts[key] = _build_context(verify, check_hostname, ca_file, cert_file, key_file)
        return context


def _build_context(
    verify: bool, check_hostname: bool, ca_file: str | None, cert_file: str | None, key_file: str | None
) -> ssl.SSLContext:
    for field, path in (("ca_file", ca_file), ("cert_file", cert_file), ("key_file", key_file)):
        if path:
            try:
                check_named_file(path, field)
            except NamedFileError as exc:
                raise TlsFileError(str(exc)) from None
    try:
        context = ssl.create_default_context(cafile=ca_file)
    except (OSError, ssl.SSLError) as exc:
        raise TlsFileError(f"ca_file: cannot load {ca_file}: {_why(exc)}") from None
    context.check_hostname = check_hostname
    if not verify:
        context.verify_mode = ssl.CERT_NONE
    if cert_file:
        try:
            context.load_cert_chain(cert_file, key_file)
        except (OSError, ssl.SSLError) as exc:
            raise TlsFileError(
                f"cert_file: cannot load {cert_file} (key_file {key_file or 'in it'}): {_why(exc)}"
            ) from None
    context.sslobject_class = TimedSSLObject
    return context


def _why(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLError):
        return exc.reason or str(exc)
    return getattr(exc, "strerror", None) or str(exc)


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


def tls_version_label(version: str) -> str:
    """'TLSv1.3' as blackbox_exporter writes it: 'TLS 1.3'."""
    return version.replace("TLSv", "TLS ") if version.startswith("TLSv") else version


def cert_labels(der: bytes) -> dict[str, str]:
    """probe_ssl_last_chain_info's labels for one certificate, as blackbox_exporter writes them
    (Go's pkix.Name strings are RFC 4514's). cryptography is imported on the first TLS run."""
    import hashlib

    from cryptography import x509

    cert = x509.load_der_x509_certificate(der)
    try:
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
            x509.DNSName
        )
    except x509.ExtensionNotFound:
        names = []
    return {
        "fingerprint_sha256": hashlib.sha256(der).hexdigest(),
        "subject": cert.subject.rfc4514_string(),
        "issuer": cert.issuer.rfc4514_string(),
        "subjectalternative": ",".join(names),
    }


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
    return dt.datetime.strptime(text, fmt).replace(tzinfo=dt.UTC).timestamp()
