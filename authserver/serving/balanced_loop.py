"""uvloop, with the connections of a listening socket that several workers share spread evenly among them.

``authserver serve --workers N`` names this loop to uvicorn (``BalancedLoop``). When uvicorn asks it for a
server on the inherited socket and the worker has a connection table (``connection_shares.py``), it gets a
``BalancedServer`` instead of uvloop's own. Every worker accepts as before; a worker that accepts a
connection while another holds at least two fewer hands it to that one over its doorbell (a Unix socket,
``SCM_RIGHTS``) before anything is read from it, so no byte is lost and no client waits for a worker's
turn. A worker it cannot reach (gone, or its doorbell full) means the connection is served where it was
accepted.

Left to uvloop's own accept, 50 connections opened at once split as unevenly as 4/46; with this, 25/25 or
24/26, which lowers the p99 whenever the race splits badly. The accept loop in Python costs a client that
opens a connection per request about an eighth of its connections per second; kept-alive connections,
nothing (docs/performance.md).
"""

from __future__ import annotations

import array
import asyncio
import contextlib
import logging
import os
import socket
import ssl as ssl_module
from collections.abc import Callable
from typing import Any

import uvloop

from authserver.serving.connection_shares import (
    SLOTS,
    ConnectionShares,
    NoFreeSlot,
    directory_from_environment,
    doorbell,
)

logger = logging.getLogger(__name__)

UVICORN_LOOP = "authserver.serving.balanced_loop:BalancedLoop"  # uvicorn's ``loop=`` names the factory

ACCEPT_ERROR_PAUSE_SECONDS = 0.1  # after EMFILE and the like, rather than spin on a socket still readable


class BalancedServer:
    """What uvicorn uses of an asyncio ``Server`` (``close``, ``wait_closed``), around an accept loop that
    hands each connection to the worker holding the fewest."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        sock: socket.socket,
        protocol_factory: Callable[[], asyncio.BaseProtocol],
        doorbell: socket.socket,
        shares: ConnectionShares,
        ssl: ssl_module.SSLContext | None = None,
        backlog: int = 100,
    ) -> None:
        self._loop = loop
        self._sock = sock
        self._protocol_factory = protocol_factory
        self._shares = shares
        self._ssl = ssl
        self._doorbell = doorbell
        loop.add_reader(doorbell.fileno(), self._admit_peer)
        self._peers: dict[int, socket.socket] = {}  # other workers' doorbells, by pid, connected on first use
        self._from_peers: set[socket.socket] = set()
        sock.setblocking(False)
        sock.listen(backlog)
        self.sockets = (sock,)
        self._accepting = loop.create_task(self._accept_forever())

    def close(self) -> None:
        """Stops taking connections at once; those already open are left to their protocols."""
        self._accepting.cancel()
        with contextlib.suppress(ValueError, OSError):  # uvicorn may have closed the socket already
            self._loop.remove_reader(self._sock.fileno())
        if self._doorbell.fileno() != -1:
            for peer in (self._doorbell, *self._from_peers):
                self._loop.remove_reader(peer.fileno())
                peer.close()
            for peer in self._peers.values():
                peer.close()
            with contextlib.suppress(FileNotFoundError):
                os.unlink(doorbell(self._shares.directory, self._shares.pid))

    async def wait_closed(self) -> None:
        with contextlib.suppress(asyncio.CancelledError):
            await self._accepting
        self._shares.leave()

    async def _accept_forever(self) -> None:
        while True:
            await self._readable()
            while True:
                try:
                    connection, _ = self._sock.accept()
                except (BlockingIOError, InterruptedError):
                    break  # another worker took it, or nothing is waiting any more
                except OSError as error:  # out of descriptors, or a connection reset while it queued
                    logger.warning("accepting a connection failed: %s", error.strerror)
                    await asyncio.sleep(ACCEPT_ERROR_PAUSE_SECONDS)
                    break
                self._place(connection)

    async def _readable(self) -> None:
        ready = self._loop.create_future()
        descriptor = self._sock.fileno()
        self._loop.add_reader(descriptor, _resolve, ready)
        try:
            await ready
        finally:
            self._loop.remove_reader(descriptor)

    def _place(self, connection: socket.socket) -> None:
        fewest = self._shares.fewest()
        if fewest is not None and self._hand_over(connection, fewest):
            return
        self._shares.opened()
        self._serve(connection)

    def _hand_over(self, connection: socket.socket, pid: int) -> bool:
        if not self._shares.hand_over(pid):
            return False
        rights = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [connection.fileno()]))]
        try:
            peer = self._peers.get(pid) or self._connect_peer(pid)
            peer.sendmsg([b"c"], rights)
        except OSError as error:  # gone, or its doorbell's buffer is full
            self._shares.take_back(pid)
            with contextlib.suppress(KeyError):
                self._peers.pop(pid).close()
            if isinstance(error, ConnectionRefusedError | FileNotFoundError):
                self._shares.forget(pid)
            return False
        connection.close()  # this worker's copy; the connection lives on in the other
        return True

    def _connect_peer(self, pid: int) -> socket.socket:
        peer = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        peer.setblocking(False)
        try:
            peer.connect(doorbell(self._shares.directory, pid))
        except OSError:
            peer.close()
            raise
        self._peers[pid] = peer
        return peer

    def _admit_peer(self) -> None:
        with contextlib.suppress(BlockingIOError, InterruptedError):
            while True:
                peer, _ = self._doorbell.accept()
                peer.setblocking(False)
                self._from_peers.add(peer)
                self._loop.add_reader(peer.fileno(), self._receive, peer)

    def _receive(self, peer: socket.socket) -> None:
        """Connections another worker handed to this one."""
        while True:
            try:
                data, descriptors, _, _ = socket.recv_fds(peer, 64, 1)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                data, descriptors = b"", []
            if not data and not descriptors:  # that worker stopped
                self._loop.remove_reader(peer.fileno())
                self._from_peers.discard(peer)
                peer.close()
                return
            for descriptor in descriptors:
                self._shares.received()
                connection = socket.socket(fileno=descriptor)
                if connection.type != socket.SOCK_STREAM:  # not a connection: only this user can send
                    connection.close()
                    self._shares.closed()
                    continue
                self._serve(connection)

    def _serve(self, connection: socket.socket) -> None:
        connection.setblocking(False)
        connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # as uvloop's own server does
        self._loop.create_task(self._connect(connection))

    async def _connect(self, connection: socket.socket) -> None:
        counted = _CountedClose(self._shares)
        try:
            await self._loop.connect_accepted_socket(
                counted.protocol(self._protocol_factory), connection, ssl=self._ssl
            )
        except (OSError, asyncio.CancelledError, ssl_module.SSLError) as error:
            counted.closed()
            connection.close()
            if not isinstance(error, asyncio.CancelledError):
                logger.debug("a connection closed before it was served: %s", error)


class _CountedClose:
    """The connection's protocol, made to take the connection off the table when it closes (once)."""

    __slots__ = ("_counted", "_shares")

    def __init__(self, shares: ConnectionShares) -> None:
        self._shares = shares
        self._counted = False

    def protocol(self, factory: Callable[[], asyncio.BaseProtocol]) -> Callable[[], asyncio.BaseProtocol]:
        def make() -> asyncio.BaseProtocol:
            protocol = factory()
            connection_lost = protocol.connection_lost

            def lost(exc: Exception | None) -> None:
                self.closed()
                connection_lost(exc)

            protocol.connection_lost = lost  # type: ignore[method-assign]  # wraps this instance's, not the class's
            return protocol

        return make

    def closed(self) -> None:
        if not self._counted:
            self._counted = True
            self._shares.closed()


def _resolve(ready: asyncio.Future[None]) -> None:
    if not ready.done():
        ready.set_result(None)


class BalancedLoop(uvloop.Loop):
    """uvloop's loop, whose servers on an inherited socket are ``BalancedServer`` (``UVICORN_LOOP``)."""

    async def create_server(
        self,
        protocol_factory: Callable[[], asyncio.BaseProtocol],
        host: Any = None,
        port: Any = None,
        **kwargs: Any,
    ) -> Any:
        sock = kwargs.get("sock")
        directory = directory_from_environment()
        if sock is None or host is not None or port is not None or directory is None:
            return await super().create_server(protocol_factory, host, port, **kwargs)
        doorbell = _doorbell(directory)
        try:
            shares = ConnectionShares(directory)
        except NoFreeSlot:
            doorbell.close()
            logger.warning("more workers than the connection table holds: this one accepts on its own")
            return await super().create_server(protocol_factory, host, port, **kwargs)
        return BalancedServer(
            self,
            sock,
            protocol_factory,
            doorbell,
            shares,
            ssl=kwargs.get("ssl"),
            backlog=kwargs.get("backlog", 100),
        )


def _doorbell(directory: str) -> socket.socket:
    # A stream socket, not datagrams: a datagram queue holds 10 messages (net.unix.max_dgram_qlen), and a
    # burst of connections filled it before the other worker had the CPU to take them in.
    listening = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listening.bind(doorbell(directory, os.getpid()))
    listening.listen(SLOTS)
    listening.setblocking(False)
    return listening
