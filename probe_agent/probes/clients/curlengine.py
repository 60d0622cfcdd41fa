"""One HTTP exchange through libcurl's multi interface, driven by the running event loop.

The HTTP engine issue 24 chose (docs/benchmarks.md, "Which HTTP engine"): libcurl through pycurl
cost 0.61-0.70x aiohttp's CPU for the same fresh-connection requests. libcurl never blocks here:
the multi handle says which sockets to watch and when to call it back (M_SOCKETFUNCTION,
M_TIMERFUNCTION); the loop's readers, writers and one timer call socket_action(), and libcurl
reads and writes without waiting. `fetch` resolves names itself, in the loop's resolver threads
(loop.getaddrinfo), and hands libcurl the addresses, which it tries in turn as it would its own:
the lookup is timed as the resolve phase and its address known even when connecting fails.

One exchange is one request on a fresh connection, redirects not followed: a caller that follows
them asks again, so each hop's phases are its own and add up as blackbox_exporter's do.

Bounded like every reader of a target. libcurl opens its own sockets, so the loop's byte budget
(probe_agent.core.budget) does not see them: every header and body byte libcurl hands over is
counted against the run's budget here, and the byte past it aborts the transfer (libcurl's
write-callback abort); the body is kept up to `max_body` bytes only; libcurl itself caps a header
line and the whole header block. A cancelled exchange (the run's deadline) takes its handle out
of the multi at once, which closes its socket: nothing is left open or pending.
"""

from __future__ import annotations

import asyncio
import os
import socket
import ssl
import time
import weakref
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urljoin, urlsplit

import pycurl

from probe_agent import USER_AGENT
from probe_agent.core.budget import ReadBudget
from probe_agent.core.errors import ProbeError, Reason
from probe_agent.probes.clients.netinfo import literal_address


class CurlFailure(Exception):
    """libcurl ended the exchange with an error: its code (pycurl.E_*) and its message."""

    def __init__(self, code: int, message: str, over: str | None = None, os_errno: int = 0, url: str = ""):
        super().__init__(message)
        self.code = code
        # set when the agent cut the transfer itself: "body" (max_body), "declared" (a
        # Content-Length over max_body, in `declared`) or "budget" (max_received_bytes)
        self.over = over
        self.declared = 0
        self.os_errno = os_errno  # the socket's errno behind a connect, send or receive error
        self.url = url


@dataclass(slots=True)
class Exchange:
    """What to ask, and what to trust."""

    url: str
    method: str = "GET"
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes | None = None
    max_body: int = 1 << 20
    verify: bool = True
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    # the same as bytes read at load (tls.named_file_bytes): libcurl is then never sent to a file
    # on the loop, where a FIFO or a slow disk would hold every probe; a blob wins over its path
    ca_blob: bytes | None = None
    cert_blob: bytes | None = None
    key_blob: bytes | None = None  # None with a cert_blob: the key is in the certificate's file
    # the certificate chain the server sent, in PEM (libcurl's CERTINFO): costs a little per run
    certificates: bool = False
    # libcurl's own deadline for the whole exchange: a probe run's is shorter and cancels it
    # first; this one holds for a caller that sets none (a black hole must not wait forever)
    timeout: float = 60.0
    # the addresses to connect to, in the order to try them, already resolved by the caller
    # (fetch resolves through the loop, so the lookup is timed and an address known even when
    # connecting fails); empty: libcurl resolves the name itself
    addresses: tuple[str, ...] = ()
    # the URL's host is that address itself (an IP literal): nothing to resolve or to pin
    literal: bool = False


@dataclass(slots=True)
class Answer:
    status: int
    http_version: float  # 1.0, 1.1, 2.0
    status_line: str
    headers: list[tuple[str, str]]
    body: bytes
    address: str  # the address connected to
    tls_version: str | None  # "TLSv1.3", as Python's ssl says it; None without TLS
    cipher: str | None
    # blackbox_exporter's phases of this one exchange, seconds
    phases: dict[str, float]
    certificates: list[str]  # PEM, the server's first


_READS = (pycurl.POLL_IN, pycurl.POLL_INOUT)
_WRITES = (pycurl.POLL_OUT, pycurl.POLL_INOUT)

# libcurl's CURL_HTTP_VERSION_* as the number probe_http_version reports
_VERSIONS = {1: 1.0, 2: 1.1, 3: 2.0, 30: 3.0}


def _ca_bundle() -> tuple[str | None, str | None]:
    # pycurl's manylinux wheel carries its own OpenSSL, whose compiled-in CA path is not this
    # system's: trust what Python's ssl module trusts here (SSL_CERT_FILE and SSL_CERT_DIR included).
    paths = ssl.get_default_verify_paths()
    return paths.cafile, paths.capath


class _Transfer:
    """One easy handle's exchange in flight: its callbacks count and keep what arrives."""

    __slots__ = (
        "block",
        "body",
        "budget",
        "cipher",
        "declared",
        "easy",
        "future",
        "header_lines",
        "kept",
        "max_body",
        "nobody",
        "over",
        "tls_version",
    )

    def __init__(self, easy: Any, future: asyncio.Future[None], budget: ReadBudget | None, max_body: int, nobody: bool):
        self.easy = easy
        self.future = future
        self.budget = budget
        self.max_body = max_body
        self.nobody = nobody  # HEAD: a Content-Length announces a body that never comes
        self.block = 0  # where the header block being received starts in header_lines
        self.declared = 0
        self.body: list[bytes] = []
        self.kept = 0
        self.header_lines: list[bytes] = []
        self.over: str | None = None
        self.tls_version: str | None = None
        self.cipher: str | None = None

    def on_debug(self, kind: int, text: bytes) -> None:
        # libcurl reports the session it negotiated only as its own text ("SSL connection using
        # TLSv1.3 / TLS_AES_256_GCM_SHA384 / x25519 / ..."): its informational lines, never the
        # target's bytes (those are other kinds, not looked at)
        if kind == pycurl.INFOTYPE_TEXT and text.startswith(b"SSL connection using "):
            words = text[len(b"SSL connection using ") :].decode("ascii", "replace").split(" / ")
            self.tls_version = words[0].strip()[:20] or None
            self.cipher = words[1].strip()[:60] if len(words) > 1 else None

    def _count(self, count: int) -> bool:
        budget = self.budget
        if budget is None:
            return True
        budget.last_byte = time.perf_counter()
        if budget.take(count):
            return True
        self.over = "budget"
        return False

    def on_header(self, line: bytes) -> int | None:
        if not self._count(len(line)):
            return -1  # anything but len(line) aborts the transfer
        lines = self.header_lines
        if line.startswith(b"HTTP/"):
            self.block = len(lines)
        lines.append(line)
        if line in (b"\r\n", b"\n") and not self.nobody and self._declared_too_long():
            return -1
        return None

    def _declared_too_long(self) -> bool:
        # a body announced larger than max_body fails before any of it is read
        block = self.header_lines[self.block :]
        if not block or block[0][9:10] == b"1":  # HTTP/1.1 100 Continue: the real answer follows
            return False
        for line in block[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                try:
                    declared = int(value.strip())
                except ValueError:
                    return False  # libcurl says what is wrong with it
                if declared > self.max_body:
                    self.over, self.declared = "declared", declared
                    return True
        return False

    def on_body(self, chunk: bytes) -> int | None:
        if not self._count(len(chunk)):
            return -1
        if self.kept + len(chunk) > self.max_body:
            self.over = "body"
            return -1
        self.kept += len(chunk)
        self.body.append(chunk)
        return None


class CurlEngine:
    """The multi handle of one event loop and the exchanges it drives."""

    def __init__(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._multi = pycurl.CurlMulti()
        self._multi.setopt(pycurl.M_SOCKETFUNCTION, self._watch)
        self._multi.setopt(pycurl.M_TIMERFUNCTION, self._set_timer)
        self._timer: asyncio.TimerHandle | None = None
        self._transfers: dict[Any, _Transfer] = {}
        self._watched: dict[int, int] = {}  # fd -> what libcurl last said it waits for
        self._cafile, self._capath = _ca_bundle()

    # --- what libcurl asks of the loop ------------------------------------------------

    def _watch(self, what: int, fd: int, _multi: Any, _socket_data: Any) -> None:
        # libcurl says what each socket waits for; only a change costs the loop a call
        loop = self._loop
        before = self._watched.get(fd, pycurl.POLL_REMOVE)
        if what == before:
            return
        reading, writing = what in _READS, what in _WRITES
        if before in _READS and not reading:
            loop.remove_reader(fd)
        if before in _WRITES and not writing:
            loop.remove_writer(fd)
        if reading and before not in _READS:
            loop.add_reader(fd, self._act, fd, pycurl.CSELECT_IN)
        if writing and before not in _WRITES:
            loop.add_writer(fd, self._act, fd, pycurl.CSELECT_OUT)
        if what == pycurl.POLL_REMOVE:
            del self._watched[fd]
        else:
            self._watched[fd] = what

    def _set_timer(self, ms: int) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if ms >= 0:
            self._timer = self._loop.call_later(ms / 1000, self._act, pycurl.SOCKET_TIMEOUT, 0)

    def _act(self, fd: int, events: int) -> None:
        multi = self._multi
        while True:
            code, _running = multi.socket_action(fd, events)
            if code != pycurl.E_CALL_MULTI_PERFORM:
                break
        while True:
            queued, done, failed = multi.info_read()
            for easy in done:
                self._settle(easy, None, "")
            for easy, code, message in failed:
                self._settle(easy, code, message)
            if not queued:
                break

    def _settle(self, easy: Any, code: int | None, message: str) -> None:
        transfer = self._transfers.pop(easy, None)
        self._multi.remove_handle(easy)
        if transfer is None or transfer.future.done():
            return
        if code is None:
            transfer.future.set_result(None)
        else:
            transfer.future.set_exception(CurlFailure(code, message, transfer.over))

    # --- one exchange -------------------------------------------------------------------

    def _easy(self, exchange: Exchange, transfer_of: Any) -> Any:
        easy = pycurl.Curl()
        easy.setopt(pycurl.URL, exchange.url)
        easy.setopt(pycurl.PROTOCOLS, pycurl.PROTO_HTTP | pycurl.PROTO_HTTPS)  # never file://, gopher://...
        easy.setopt(pycurl.NOSIGNAL, 1)
        easy.setopt(pycurl.PROXY, "")  # never the environment's http_proxy: a probe measures its own path
        easy.setopt(pycurl.FORBID_REUSE, 1)  # a fresh connection: connect and TLS measured every run
        easy.setopt(pycurl.FRESH_CONNECT, 1)
        # no TLS session resumption either: a resumed session shows no certificate and times a
        # cheaper handshake than a new client meets (Go's client, blackbox_exporter's, resumes none)
        easy.setopt(pycurl.SSL_SESSIONID_CACHE, 0)
        easy.setopt(pycurl.FOLLOWLOCATION, 0)
        easy.setopt(pycurl.TIMEOUT_MS, max(int(exchange.timeout * 1000), 1))
        easy.setopt(pycurl.ACCEPT_ENCODING, "")  # what this libcurl can decode; the body is kept decoded
        easy.setopt(pycurl.USERAGENT, USER_AGENT)  # a User-Agent in the headers replaces it
        if exchange.addresses and not exchange.literal:
            parts = urlsplit(exchange.url)
            port = parts.port or (443 if parts.scheme.lower() == "https" else 80)
            shown = ",".join(f"[{a}]" if ":" in a else a for a in exchange.addresses)
            easy.setopt(pycurl.RESOLVE, [f"{parts.hostname}:{port}:{shown}"])
        method = exchange.method.upper()
        if method == "HEAD":
            easy.setopt(pycurl.NOBODY, 1)
        elif method != "GET":
            easy.setopt(pycurl.CUSTOMREQUEST, method)
        body = exchange.body
        if body is None and method in ("POST", "PUT", "PATCH"):
            body = b""  # "Content-Length: 0": nginx and others answer 411 to a POST of no length
        if body is not None:
            easy.setopt(pycurl.POSTFIELDS, body)
            if method == "GET":
                easy.setopt(pycurl.CUSTOMREQUEST, "GET")  # POSTFIELDS alone would make it a POST
        # "Name;" is libcurl's way to send a header empty ("Name:" would drop it)
        headers = [f"{k}: {v}" if v.strip() else f"{k};" for k, v in exchange.headers]
        if body is not None:
            headers.append("Expect:")  # no 100-continue wait before a larger body: servers differ on it
            if not any(k.lower() == "content-type" for k, _ in exchange.headers):
                headers.append("Content-Type:")  # not libcurl's made-up form type: the config says, or none
        easy.setopt(pycurl.HTTPHEADER, headers)
        if exchange.verify:
            easy.setopt(pycurl.SSL_VERIFYPEER, 1)
            easy.setopt(pycurl.SSL_VERIFYHOST, 2)
            if exchange.ca_blob is not None:
                easy.setopt(pycurl.CAINFO_BLOB, exchange.ca_blob)
            elif exchange.ca_file:
                easy.setopt(pycurl.CAINFO, exchange.ca_file)
            else:
                if self._cafile:
                    easy.setopt(pycurl.CAINFO, self._cafile)
                if self._capath:
                    easy.setopt(pycurl.CAPATH, self._capath)
        else:
            easy.setopt(pycurl.SSL_VERIFYPEER, 0)
            easy.setopt(pycurl.SSL_VERIFYHOST, 0)
        if exchange.cert_blob is not None:
            easy.setopt(pycurl.SSLCERT_BLOB, exchange.cert_blob)
            easy.setopt(pycurl.SSLKEY_BLOB, exchange.cert_blob if exchange.key_blob is None else exchange.key_blob)
        elif exchange.cert_file:
            easy.setopt(pycurl.SSLCERT, exchange.cert_file)
            if exchange.key_file:
                easy.setopt(pycurl.SSLKEY, exchange.key_file)
        if exchange.certificates:
            easy.setopt(pycurl.OPT_CERTINFO, 1)
        if exchange.url[:8].lower() == "https://":
            easy.setopt(pycurl.VERBOSE, 1)  # for the negotiated TLS version (on_debug); only over TLS
            easy.setopt(pycurl.DEBUGFUNCTION, transfer_of.on_debug)
        easy.setopt(pycurl.HEADERFUNCTION, transfer_of.on_header)
        easy.setopt(pycurl.WRITEFUNCTION, transfer_of.on_body)
        return easy

    async def exchange(self, exchange: Exchange, budget: ReadBudget | None = None) -> Answer:
        """Ask once. Raises CurlFailure for what libcurl could not do; cancelling it (the run's
        deadline) ends the transfer and closes its connection at once."""
        future: asyncio.Future[None] = self._loop.create_future()
        transfer = _Transfer(None, future, budget, exchange.max_body, exchange.method.upper() == "HEAD")
        easy = transfer.easy = self._easy(exchange, transfer)
        self._transfers[easy] = transfer
        self._multi.add_handle(easy)
        try:
            await future
        except asyncio.CancelledError:
            if self._transfers.pop(easy, None) is not None:
                self._multi.remove_handle(easy)  # closes its socket (libcurl says POLL_REMOVE first)
            easy.close()
            raise
        except CurlFailure as failure:
            failure.url = exchange.url
            failure.declared = transfer.declared
            failure.os_errno = easy.getinfo(pycurl.OS_ERRNO)
            easy.close()
            raise
        try:
            return _answer(easy, transfer, exchange.certificates)
        finally:
            easy.close()

    def close(self) -> None:
        for easy in list(self._transfers):
            transfer = self._transfers.pop(easy)
            self._multi.remove_handle(easy)
            easy.close()
            if not transfer.future.done():
                transfer.future.cancel()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._multi.close()

    @property
    def in_flight(self) -> int:
        return len(self._transfers)


def _answer(easy: Any, transfer: _Transfer, certificates: bool) -> Answer:
    lines = [line.decode("iso-8859-1").rstrip("\r\n") for line in transfer.header_lines]
    # the last status line and the headers after it (a 100 Continue comes before)
    starts = [i for i, line in enumerate(lines) if line.startswith("HTTP/")]
    head = lines[starts[-1] :] if starts else lines
    headers = []
    for line in head[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers.append((name.strip(), value.strip()))
    dns = easy.getinfo(pycurl.NAMELOOKUP_TIME)
    connect = easy.getinfo(pycurl.CONNECT_TIME)
    tls = easy.getinfo(pycurl.APPCONNECT_TIME)
    sent = easy.getinfo(pycurl.PRETRANSFER_TIME)
    first_byte = easy.getinfo(pycurl.STARTTRANSFER_TIME)
    total = easy.getinfo(pycurl.TOTAL_TIME)
    phases = {
        "resolve": dns,
        "connect": max(connect - dns, 0.0),
        "tls": max(tls - connect, 0.0) if tls else 0.0,
        "processing": max(first_byte - sent, 0.0),
        "transfer": max(total - first_byte, 0.0),
    }
    chain = []
    if certificates:
        for cert in easy.getinfo(pycurl.INFO_CERTINFO) or []:
            for key, value in cert:
                if key == "Cert":
                    chain.append(value)
    return Answer(
        status=easy.getinfo(pycurl.RESPONSE_CODE),
        http_version=_VERSIONS.get(easy.getinfo(pycurl.INFO_HTTP_VERSION), 0.0),
        status_line=head[0] if head else "",
        headers=headers,
        body=b"".join(transfer.body),
        address=easy.getinfo(pycurl.PRIMARY_IP) or "",
        tls_version=transfer.tls_version,
        cipher=transfer.cipher,
        phases=phases,
        certificates=chain,
    )


# One engine per event loop (the agent has one; tests make many).
_engines: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, CurlEngine] = weakref.WeakKeyDictionary()


def engine() -> CurlEngine:
    loop = asyncio.get_running_loop()
    found = _engines.get(loop)
    if found is None:
        found = _engines[loop] = CurlEngine()
    return found


def close_engine() -> None:
    """Close the running loop's engine, if it has one."""
    found = _engines.pop(asyncio.get_running_loop(), None)
    if found is not None:
        found.close()


# --- redirects: one exchange per hop ---------------------------------------------------------

MAX_REDIRECTS = 10  # aiohttp's default, which the http probe had
REDIRECTS = (301, 302, 303, 307, 308)


@dataclass(slots=True)
class Hop:
    """A redirect answered on the way: what it said and where it sent the request."""

    url: str
    status_line: str
    location: str


@dataclass(slots=True)
class Progress:
    """What a fetch has learnt so far, kept when it fails: the phases summed over every hop (as
    blackbox_exporter's), the last address a name resolved to, the redirects answered."""

    phases: dict[str, float] = field(default_factory=dict)
    address: str | None = None
    hops: list[Hop] = field(default_factory=list)

    def add(self, phase: str, seconds: float) -> None:
        self.phases[phase] = self.phases.get(phase, 0.0) + seconds


@dataclass(slots=True)
class Fetched:
    answer: Answer  # the last one
    url: str  # where it came from
    hops: list[Hop]
    phases: dict[str, float]  # summed over every hop, as blackbox_exporter's


class TooManyRedirects(Exception):
    def __init__(self, hops: list[Hop]):
        super().__init__(f"too many redirects (over {len(hops) - 1})")
        self.hops = hops


class CannotResolve(Exception):
    def __init__(self, host: str):
        super().__init__(f"cannot resolve host {host[:300]}")


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme.lower(), (parts.hostname or "").lower() + f":{parts.port or ''}"


MAX_ADDRESSES = 8  # of one name, tried in turn; a DNS answer of a thousand records is not


async def resolve(url: str, progress: Progress) -> tuple[str, ...]:
    """The addresses a URL's host name resolves to, in the system's order (the first is the
    one `progress` names until a connection says otherwise), looked up in the loop's resolver
    threads and timed as the resolve phase; empty for an IP literal."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if literal_address(host) is not None:
        progress.address = host
        return ()
    port = parts.port or (443 if parts.scheme.lower() == "https" else 80)
    started = time.perf_counter()
    try:
        found = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        raise CannotResolve(host) from None
    finally:
        progress.add("resolve", time.perf_counter() - started)
    if not found:
        raise CannotResolve(host)
    addresses = tuple(dict.fromkeys(str(info[4][0]) for info in found))[:MAX_ADDRESSES]
    progress.address = addresses[0]
    return addresses


async def fetch(
    exchange: Exchange, budget: ReadBudget | None = None, follow: bool = True, progress: Progress | None = None
) -> Fetched:
    """Resolve, ask, and follow redirects hop by hop. Credentials (an Authorization or Cookie
    header; a URL's user:password, which a Location naming another origin does not carry) go only
    to the origin they were written for; 303, and 301/302 after a POST, ask again with GET and no
    body, as browsers (and aiohttp) do. `progress`, when given, is filled as the fetch goes, so a
    failure keeps what was measured."""
    seen = Progress() if progress is None else progress
    current = exchange
    while True:
        if not current.addresses:
            if addresses := await resolve(current.url, seen):
                current = replace(current, addresses=addresses)
        else:
            seen.address = current.addresses[0]
        answer = await engine().exchange(current, budget)
        for phase, seconds in answer.phases.items():
            seen.add(phase, seconds)
        if answer.address:
            seen.address = answer.address
        location = next((v for k, v in answer.headers if k.lower() == "location"), None)
        if not follow or answer.status not in REDIRECTS or location is None:
            return Fetched(answer, current.url, seen.hops, seen.phases)
        seen.hops.append(Hop(current.url, answer.status_line, location))
        if len(seen.hops) > MAX_REDIRECTS:
            raise TooManyRedirects(seen.hops)
        target = urljoin(current.url, location)
        if urlsplit(target).scheme.lower() not in ("http", "https"):
            raise ProbeError(Reason.PROTOCOL, f"redirect to a URL that is not http or https: {target[:200]}")
        method, body = current.method, current.body
        if (answer.status == 303 and method != "HEAD") or (answer.status in (301, 302) and method == "POST"):
            method, body = "GET", None
        headers = current.headers
        if _origin(target) != _origin(exchange.url):
            headers = [(k, v) for k, v in headers if k.lower() not in ("authorization", "cookie")]
        current = replace(current, url=target, method=method, body=body, headers=headers, addresses=(), literal=False)


def _host_port(url: str) -> str:
    parts = urlsplit(url)
    try:
        port = parts.port or (443 if parts.scheme.lower() == "https" else 80)
    except ValueError:
        port = 0
    host = parts.hostname or "?"
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def translate_failure(exc: BaseException, max_body: int | None = None) -> ProbeError | None:
    """What libcurl (or the name lookup) could not do, as a Reason and the words the http probe
    has always used. `max_body`: the limit a body went over, to name it."""
    if isinstance(exc, (TooManyRedirects, CannotResolve)):
        return ProbeError(Reason.PROTOCOL if isinstance(exc, TooManyRedirects) else Reason.CONNECT, str(exc))
    if not isinstance(exc, CurlFailure):
        return None
    code, said, errno = exc.code, str(exc), exc.os_errno
    limit = f" {max_body}" if max_body is not None else ""
    if exc.over == "declared":
        return ProbeError(Reason.PROTOCOL, f"response body of {exc.declared} bytes exceeds max_body_bytes{limit}")
    if exc.over == "body":
        return ProbeError(Reason.PROTOCOL, f"response body exceeds max_body_bytes{limit}")
    if code == pycurl.E_OPERATION_TIMEDOUT:
        return ProbeError(Reason.TIMEOUT, f"no answer in time: {said}")
    if code == pycurl.E_COULDNT_RESOLVE_HOST:
        return ProbeError(Reason.CONNECT, f"cannot resolve host: {said}")
    if code == pycurl.E_COULDNT_CONNECT:
        detail = os.strerror(errno).lower() if errno else said
        return ProbeError(Reason.CONNECT, f"cannot connect to {_host_port(exc.url)}: {detail}")
    if code == pycurl.E_PEER_FAILED_VERIFICATION:
        return ProbeError(Reason.TLS, "certificate verify failed: " + said.removeprefix("SSL certificate problem: "))
    if code in (pycurl.E_SSL_CONNECT_ERROR, pycurl.E_SSL_CERTPROBLEM, pycurl.E_SSL_CIPHER):
        return ProbeError(Reason.TLS, f"TLS handshake failed: {said}")
    if code == pycurl.E_GOT_NOTHING:
        return ProbeError(Reason.PROTOCOL, "server closed the connection without a complete response")
    if code in (pycurl.E_RECV_ERROR, pycurl.E_SEND_ERROR) and errno:
        return ProbeError(Reason.CONNECT, os.strerror(errno).lower())  # reset by peer, broken pipe
    if code in (pycurl.E_RECV_ERROR, pycurl.E_SEND_ERROR, pycurl.E_PARTIAL_FILE):
        return ProbeError(Reason.PROTOCOL, f"response body was cut off or malformed: {said}")
    return ProbeError(Reason.PROTOCOL, f"invalid HTTP response: {said}")
