"""Hostile TCP peers and a fault-injecting proxy, all on loopback.

There is no tc/netem or toxiproxy here, so network faults are made in-process:
a server that accepts and never answers, one that resets, one that drips a
response a byte at a time, one that sends far more than any cap, and a proxy
in front of a real server that can add latency, black-hole, or cut after N bytes.
"""

from __future__ import annotations

import asyncio
import os
import socket
import struct
import threading


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def reset(writer: asyncio.StreamWriter) -> None:
    """Close with RST instead of FIN (SO_LINGER 0)."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


class HostileServer:
    """modes: blackhole, reset, close, drip, huge, banner:<text>."""

    def __init__(self, mode: str):
        self.mode = mode
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self.connections = 0

    async def __aenter__(self) -> HostileServer:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._writers.add(writer)
        try:
            if self.mode == "blackhole":
                await asyncio.sleep(3600)
            elif self.mode == "reset":
                await reader.read(1)  # wait for the request so the client sees a reset, not a refused connect
                reset(writer)
            elif self.mode == "close":
                writer.close()
            elif self.mode == "drip":
                await reader.read(65536)
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n")
                for _ in range(1000):
                    writer.write(b"x")
                    await writer.drain()
                    await asyncio.sleep(0.2)
            elif self.mode == "huge":
                await reader.read(65536)
                writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
                chunk = b"y" * 65536
                for _ in range(4096):  # up to 256 MiB unless the client hangs up first
                    writer.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                    await writer.drain()
            elif self.mode.startswith("banner:"):
                writer.write(self.mode.removeprefix("banner:").encode())
                await writer.drain()
                await reader.read(65536)
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self._writers.discard(writer)
            if not writer.is_closing():
                writer.close()


class FaultProxy:
    """TCP proxy 127.0.0.1:port -> upstream with switchable faults.

    mode: "pass", "blackhole" (accept, never forward), "refuse" (listener closed),
    "reset" (reset new connections), "latency" (delay each chunk by `latency` s),
    "cut" (forward `cut_after` bytes from upstream, then reset).
    """

    def __init__(self, upstream_host: str, upstream_port: int):
        self.upstream = (upstream_host, upstream_port)
        self.mode = "pass"
        self.latency = 0.0
        self.cut_after = 0
        self.port = free_port()
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> FaultProxy:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port, reuse_address=True)
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for writer in list(self._writers):
            writer.transport.abort()
        for task in list(self._tasks):
            task.cancel()

    async def set_mode(self, mode: str) -> None:
        self.mode = mode
        if mode == "refuse":
            await self.stop()
        elif self._server is None:
            await self.start()
        if mode in ("blackhole", "reset", "cut"):
            for writer in list(self._writers):  # existing connections suffer too
                writer.transport.abort()

    async def __aenter__(self) -> FaultProxy:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            if self.mode == "blackhole":
                await asyncio.sleep(3600)
                return
            if self.mode == "reset":
                reset(writer)
                return
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
            self._writers.add(up_writer)
            a = asyncio.create_task(self._pipe(reader, up_writer, upstream=False))
            b = asyncio.create_task(self._pipe(up_reader, writer, upstream=True))
            self._tasks.update((a, b))
            await asyncio.wait({a, b}, return_when=asyncio.FIRST_COMPLETED)
            for t in (a, b):
                t.cancel()
                self._tasks.discard(t)
            up_writer.close()
            self._writers.discard(up_writer)
        except (OSError, asyncio.CancelledError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()

    async def _pipe(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter, upstream: bool) -> None:
        sent = 0
        try:
            while chunk := await src.read(65536):
                if self.mode == "blackhole":
                    await asyncio.sleep(3600)
                if self.latency:
                    await asyncio.sleep(self.latency)
                if upstream and self.mode == "cut" and sent + len(chunk) > self.cut_after:
                    dst.write(chunk[: self.cut_after - sent])
                    await dst.drain()
                    reset(dst)
                    return
                dst.write(chunk)
                await dst.drain()
                sent += len(chunk)
        except (OSError, asyncio.CancelledError):
            pass


class BlackHole:
    """A listener that accepts and never answers, on its own thread so it serves while tests block."""

    def __init__(self) -> None:
        import socket

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(512)  # backlog: connections complete in the kernel and then hang
        self.port = self.sock.getsockname()[1]

    def close(self) -> None:
        self.sock.close()


class SpewServer:
    """Accepts and streams bytes at the client without end: `prefix` first (a protocol-looking
    header such as Redis's `$999999999999\\r\\n`), then random bytes, until the client hangs up or
    the server is closed. Threads with blocking sockets, so it sends whatever the client's loop is
    doing, and costs nothing while the client's window is full."""

    CHUNK = 65536

    def __init__(self, prefix: bytes = b""):
        self.prefix = prefix
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.sent = 0
        self._closed = False
        self._peers: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                peer, _ = self.sock.accept()
            except OSError:
                return
            self._peers.append(peer)
            threading.Thread(target=self._spew, args=(peer,), daemon=True).start()

    def _spew(self, peer: socket.socket) -> None:
        chunk = os.urandom(self.CHUNK)
        threading.Thread(target=self._drain, args=(peer,), daemon=True).start()
        try:
            peer.sendall(self.prefix)
            while not self._closed:
                peer.sendall(chunk)
                self.sent += len(chunk)
        except OSError:
            pass
        finally:
            peer.close()

    @staticmethod
    def _drain(peer: socket.socket) -> None:
        # read what the client says, so its writes never block on a full window
        try:
            while peer.recv(65536):
                pass
        except OSError:
            pass

    def close(self) -> None:
        self._closed = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)  # wakes the thread blocked in accept(): close alone does not
        except OSError:
            pass
        self.sock.close()
        for peer in self._peers:
            try:
                peer.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def __enter__(self) -> SpewServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
