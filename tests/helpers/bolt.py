"""A small Bolt 5 server for tests: no Neo4j can run here, so this speaks the real wire
protocol to the real `neo4j` driver. It answers HELLO/LOGON/RUN/PULL/BEGIN/COMMIT/
ROLLBACK/RESET/ROUTE/GOODBYE, and can be told to fail auth, fail queries, hang, or
drop the connection mid-query.

Bolt messages are PackStream structs, sent in chunks (uint16 length + bytes) ended by 00 00.
"""

from __future__ import annotations

import asyncio
import struct
from typing import Any

MAGIC = b"\x60\x60\xb0\x17"
BOLT_5_4 = b"\x00\x00\x04\x05"

HELLO, GOODBYE, RESET, RUN, BEGIN, COMMIT, ROLLBACK, PULL, DISCARD, LOGON, LOGOFF, ROUTE, TELEMETRY = (
    0x01,
    0x02,
    0x0F,
    0x10,
    0x11,
    0x12,
    0x13,
    0x3F,
    0x2F,
    0x6A,
    0x6B,
    0x66,
    0x54,
)
SUCCESS, RECORD, IGNORED, FAILURE = 0x70, 0x71, 0x7E, 0x7F


class Structure:
    def __init__(self, tag: int, *fields: Any):
        self.tag, self.fields = tag, list(fields)


# --- PackStream ----------------------------------------------------------------


def pack(value: Any) -> bytes:
    if value is None:
        return b"\xc0"
    if value is True:
        return b"\xc3"
    if value is False:
        return b"\xc2"
    if isinstance(value, int):
        if -16 <= value < 128:
            return struct.pack(">b", value)
        for marker, fmt, lo, hi in (
            (0xC8, ">b", -(2**7), 2**7),
            (0xC9, ">h", -(2**15), 2**15),
            (0xCA, ">i", -(2**31), 2**31),
            (0xCB, ">q", -(2**63), 2**63),
        ):
            if lo <= value < hi:
                return bytes([marker]) + struct.pack(fmt, value)
    if isinstance(value, float):
        return b"\xc1" + struct.pack(">d", value)
    if isinstance(value, str):
        data = value.encode()
        return _sized(len(data), 0x80, 0xD0) + data
    if isinstance(value, list):
        return _sized(len(value), 0x90, 0xD4) + b"".join(pack(v) for v in value)
    if isinstance(value, dict):
        return _sized(len(value), 0xA0, 0xD8) + b"".join(pack(k) + pack(v) for k, v in value.items())
    if isinstance(value, Structure):
        return bytes([0xB0 + len(value.fields), value.tag]) + b"".join(pack(f) for f in value.fields)
    raise TypeError(f"cannot pack {type(value).__name__}")


def _sized(n: int, tiny: int, marker: int) -> bytes:
    if n < 16:
        return bytes([tiny + n])
    if n < 2**8:
        return bytes([marker]) + struct.pack(">B", n)
    if n < 2**16:
        return bytes([marker + 1]) + struct.pack(">H", n)
    return bytes([marker + 2]) + struct.pack(">I", n)


def unpack(data: bytes, pos: int = 0) -> tuple[Any, int]:
    marker = data[pos]
    pos += 1
    if marker < 0x80:
        return marker, pos
    if marker >= 0xF0:
        return marker - 0x100, pos
    high, low = marker & 0xF0, marker & 0x0F
    if high == 0x80:
        return data[pos : pos + low].decode(), pos + low
    if high == 0x90:
        return _items(data, pos, low, False)
    if high == 0xA0:
        return _items(data, pos, low, True)
    if high == 0xB0:
        tag = data[pos]
        fields, pos = _items(data, pos + 1, low, False)
        return Structure(tag, *fields), pos
    if marker == 0xC0:
        return None, pos
    if marker in (0xC2, 0xC3):
        return marker == 0xC3, pos
    if marker == 0xC1:
        return struct.unpack_from(">d", data, pos)[0], pos + 8
    ints = {0xC8: ">b", 0xC9: ">h", 0xCA: ">i", 0xCB: ">q"}
    if marker in ints:
        size = struct.calcsize(ints[marker])
        return struct.unpack_from(ints[marker], data, pos)[0], pos + size
    sizes = {0: ">B", 1: ">H", 2: ">I"}
    for base, kind in ((0xD0, "str"), (0xD4, "list"), (0xD8, "map"), (0xCC, "bytes")):
        if base <= marker <= base + 2:
            fmt = sizes[marker - base]
            n = struct.unpack_from(fmt, data, pos)[0]
            pos += struct.calcsize(fmt)
            if kind == "str":
                return data[pos : pos + n].decode(), pos + n
            if kind == "bytes":
                return data[pos : pos + n], pos + n
            return _items(data, pos, n, kind == "map")
    raise ValueError(f"unknown PackStream marker 0x{marker:02X}")


def _items(data: bytes, pos: int, n: int, as_map: bool) -> tuple[Any, int]:
    values = []
    for _ in range(n * (2 if as_map else 1)):
        value, pos = unpack(data, pos)
        values.append(value)
    if as_map:
        return dict(zip(values[::2], values[1::2], strict=False)), pos
    return values, pos


# --- server ----------------------------------------------------------------------


class BoltServer:
    """mode: "ok", "auth_fail", "rate_limit" (on login), "expired" (password to change, on RUN),
    "query_fail", "hang" (accept, never answer), "drop" (close on RUN)."""

    AGENT = "Neo4j/5.26.0"

    def __init__(self, mode: str = "ok", user: str = "neo4j", password: str = "s3cret-bolt"):
        self.mode, self.user, self.password = mode, user, password
        self.port = 0
        self.queries: list[str] = []
        self.messages: list[int] = []
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def __aenter__(self) -> BoltServer:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for w in list(self._writers):
            w.transport.abort()
        await self._server.wait_closed()

    @property
    def uri(self) -> str:
        return f"bolt://127.0.0.1:{self.port}"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            if self.mode == "hang":
                await asyncio.sleep(3600)
            handshake = await reader.readexactly(20)
            if handshake[:4] != MAGIC:
                return
            writer.write(BOLT_5_4)
            failed = False
            while True:
                message = await self._read_message(reader)
                if message is None:
                    return
                self.messages.append(message.tag)
                if message.tag == GOODBYE:
                    return
                if message.tag == RESET:
                    failed = False
                    await self._send(writer, Structure(SUCCESS, {}))
                    continue
                if failed:
                    await self._send(writer, Structure(IGNORED))
                    continue
                replies = self._answer(message)
                if replies is None:  # drop the connection
                    writer.transport.abort()
                    return
                for reply in replies:
                    await self._send(writer, reply)
                failed = any(r.tag == FAILURE for r in replies)
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()

    def _answer(self, message: Structure) -> list[Structure] | None:
        tag, fields = message.tag, message.fields
        if tag == HELLO:
            return [Structure(SUCCESS, {"server": self.AGENT, "connection_id": "bolt-1", "hints": {}})]
        if tag == LOGON:
            auth = fields[0]
            if self.mode == "rate_limit":
                return [
                    Structure(
                        FAILURE,
                        {
                            "code": "Neo.ClientError.Security.AuthenticationRateLimit",
                            "message": "The client has provided incorrect authentication details too many times in a row.",
                        },
                    )
                ]
            if (
                self.mode == "auth_fail"
                or auth.get("principal") != self.user
                or auth.get("credentials") != self.password
            ):
                return [
                    Structure(
                        FAILURE,
                        {
                            "code": "Neo.ClientError.Security.Unauthorized",
                            "message": "The client is unauthorized due to authentication failure.",
                        },
                    )
                ]
            return [Structure(SUCCESS, {})]
        if tag in (LOGOFF, BEGIN, ROLLBACK, TELEMETRY):
            return [Structure(SUCCESS, {})]
        if tag == COMMIT:
            return [Structure(SUCCESS, {"bookmark": "FB:test"})]
        if tag == ROUTE:
            address = f"127.0.0.1:{self.port}"
            servers = [{"addresses": [address], "role": role} for role in ("WRITE", "READ", "ROUTE")]
            return [Structure(SUCCESS, {"rt": {"ttl": 300, "db": "neo4j", "servers": servers}})]
        if tag == RUN:
            self.queries.append(fields[0])
            if self.mode == "drop":
                return None
            if self.mode == "expired":
                return [
                    Structure(
                        FAILURE,
                        {
                            "code": "Neo.ClientError.Security.CredentialsExpired",
                            "message": "Permission denied. The credentials you provided were valid, but must be changed before you can use this instance.",
                        },
                    )
                ]
            if self.mode == "query_fail" or fields[0].strip().upper() not in ("RETURN 1", "RETURN 2"):
                # as Neo4j 5 words it: the first line names the token, then the query and a caret
                token = fields[0].split()[0]
                return [
                    Structure(
                        FAILURE,
                        {
                            "code": "Neo.ClientError.Statement.SyntaxError",
                            "message": f"Invalid input '{token}': expected 'RETURN' (line 1, column 1 (offset: 0))\n\"{fields[0]}\"\n ^",
                        },
                    )
                ]
            return [Structure(SUCCESS, {"fields": ["1"], "t_first": 0, "qid": 0})]
        if tag in (PULL, DISCARD):
            value = int(self.queries[-1].split()[-1]) if self.queries else 1
            return [Structure(RECORD, [value]), Structure(SUCCESS, {"type": "r", "t_last": 0, "db": "neo4j"})]
        return [
            Structure(FAILURE, {"code": "Neo.ClientError.Request.Invalid", "message": f"unknown message 0x{tag:02X}"})
        ]

    @staticmethod
    async def _read_message(reader: asyncio.StreamReader) -> Structure | None:
        data = b""
        while True:
            size = struct.unpack(">H", await reader.readexactly(2))[0]
            if size == 0:
                if not data:  # a NOOP keep-alive chunk
                    continue
                break
            data += await reader.readexactly(size)
        message, _ = unpack(data)
        return message if isinstance(message, Structure) else None

    @staticmethod
    async def _send(writer: asyncio.StreamWriter, message: Structure) -> None:
        data = pack(message)
        for i in range(0, len(data), 65535):
            chunk = data[i : i + 65535]
            writer.write(struct.pack(">H", len(chunk)) + chunk)
        writer.write(b"\x00\x00")
        await writer.drain()
