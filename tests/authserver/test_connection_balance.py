"""Connections spread evenly over ``authserver serve``'s workers (``serving/``): the table of who holds how
many, and a real two-worker server whose workers hand connections to each other."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from authserver.serving import connection_shares
from authserver.serving.connection_shares import ConnectionShares, NoFreeSlot
from harness.authserver import AuthServer, running_server

ROUTE = "/.well-known/openid-configuration"
DEADLINE_SECONDS = 20


# The table ---------------------------------------------------------------------------------------------


@pytest.fixture
def table() -> Iterator[str]:
    directory = connection_shares.create()
    yield directory
    shutil.rmtree(directory)


@pytest.fixture
def other_pid() -> Iterator[int]:
    """A live process other than this one, standing in for another worker."""
    process = subprocess.Popen(["sleep", "60"])
    yield process.pid
    process.kill()
    process.wait()


def test_the_table_directory_is_private(table: str) -> None:
    assert os.stat(table).st_mode & 0o777 == 0o700  # no other user can hand a worker anything


def test_a_worker_hands_over_only_to_one_holding_at_least_two_fewer(table: str, other_pid: int) -> None:
    mine, other = ConnectionShares(table), ConnectionShares(table, pid=other_pid)
    mine.opened()
    assert mine.fewest() is None  # 1 against 0: as even as it gets
    mine.opened()
    assert mine.fewest() == other_pid
    assert other.fewest() is None


def test_a_connection_on_its_way_counts_at_once(table: str, other_pid: int) -> None:
    mine, other = ConnectionShares(table), ConnectionShares(table, pid=other_pid)
    for _ in range(4):
        mine.opened()
    assert mine.hand_over(other_pid)
    assert mine.fewest() == other_pid  # 4 against 1
    assert mine.hand_over(other_pid)
    assert mine.fewest() == other_pid  # 4 against 2
    assert mine.hand_over(other_pid)
    assert mine.fewest() is None  # 4 against 3: a burst does not all go to the worker that looked emptiest
    other.received()
    other.received()
    other.received()
    assert other.connections == 3
    assert mine.fewest() is None  # 4 against 3, now held


def test_a_connection_that_could_not_be_sent_is_taken_back(table: str, other_pid: int) -> None:
    mine = ConnectionShares(table)
    ConnectionShares(table, pid=other_pid)
    mine.opened()
    mine.opened()
    assert mine.hand_over(other_pid)
    assert mine.fewest() is None  # 2 against 1
    mine.take_back(other_pid)
    assert mine.fewest() == other_pid  # 2 against 0


def test_closing_connections_counts_down(table: str, other_pid: int) -> None:
    mine, other = ConnectionShares(table), ConnectionShares(table, pid=other_pid)
    for _ in range(3):
        other.opened()
    for _ in range(3):
        other.closed()
    mine.opened()
    mine.opened()
    assert mine.fewest() == other_pid


def test_the_slot_of_a_dead_worker_is_taken_by_its_successor(table: str) -> None:
    dead = subprocess.Popen(["true"])
    dead.wait()
    gone = ConnectionShares(table, pid=dead.pid)
    for _ in range(5):
        gone.opened()
    successor = ConnectionShares(table)
    assert successor._slot == gone._slot
    assert successor.hand_over(dead.pid) is False  # no slot of that pid any more


def test_a_worker_that_refused_a_connection_is_forgotten(table: str, other_pid: int) -> None:
    mine = ConnectionShares(table)
    ConnectionShares(table, pid=other_pid)
    mine.opened()
    mine.opened()
    assert mine.fewest() == other_pid
    mine.forget(other_pid)
    assert mine.fewest() is None


def test_a_full_table_says_so(table: str) -> None:
    sleepers = [subprocess.Popen(["sleep", "60"]) for _ in range(connection_shares.SLOTS)]
    try:
        for sleeper in sleepers:
            ConnectionShares(table, pid=sleeper.pid)
        with pytest.raises(NoFreeSlot):
            ConnectionShares(table)
    finally:
        for sleeper in sleepers:
            sleeper.kill()
            sleeper.wait()


def test_leaving_frees_the_slot(table: str, other_pid: int) -> None:
    mine, other = ConnectionShares(table), ConnectionShares(table, pid=other_pid)
    for _ in range(3):
        mine.opened()
    other.leave()
    assert mine.fewest() is None


# A two-worker server -----------------------------------------------------------------------------------


@pytest.fixture
def server(tmp_path: Path) -> Iterator[AuthServer]:
    with running_server(tmp_path / "server", workers=2) as started:
        _wait_for_workers(started, 2)
        yield started


def _wait_for_workers(server: AuthServer, count: int, besides: set[int] = frozenset()) -> list[int]:
    """The worker pids once ``count`` of them (none in ``besides``) answer on the shared socket."""
    deadline = time.monotonic() + DEADLINE_SECONDS
    while True:
        workers = server.worker_pids()
        if len(workers) == count and not besides & set(workers) and _served_by_all(server, workers):
            return workers
        assert time.monotonic() < deadline, f"workers {workers}:\n{server.log_tail()}"


def _served_by_all(server: AuthServer, workers: list[int]) -> bool:
    """Whether every worker has started serving (each has counted a request of its own). Returns only once
    the 8 requests it sends are all counted: a count trailing its response must not land in a later check."""
    before = sum(server.requests_by_worker(ROUTE).values())
    for connection in _open(server, 8):
        with connection:
            _get(connection)
    deadline = time.monotonic() + DEADLINE_SECONDS
    while sum((after := server.requests_by_worker(ROUTE)).values()) < before + 8:
        assert time.monotonic() < deadline, "the requests were never counted"
    return all(after.get(pid, 0) for pid in workers)


def _open(server: AuthServer, count: int) -> list[socket.socket]:
    return [
        socket.create_connection(("127.0.0.1", server.port), timeout=DEADLINE_SECONDS) for _ in range(count)
    ]


def _get(connection: socket.socket) -> None:
    connection.sendall(f"GET {ROUTE} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
    response = b""
    while b"\r\n\r\n" not in response:
        response += _received(connection)
    head, body = response.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 200"), head
    length = next(
        int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")
    )
    while len(body) < length:
        body += _received(connection)


def _received(connection: socket.socket) -> bytes:
    chunk = connection.recv(65536)
    assert chunk, "the server closed the connection"
    return chunk


def _accept_queue(port: int) -> int:
    """Connections waiting in the listening socket's accept queue (/proc/net/tcp's rx_queue of LISTEN)."""
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[3] == "0A" and int(fields[1].split(":")[1], 16) == port:
            return int(fields[4].split(":")[1], 16)
    raise AssertionError(f"nothing listens on {port}")


def _alive(pid: int) -> bool:
    """Any thread of ``pid`` still running. A killed worker's main thread turns zombie before its other
    threads are done, and its descriptors (the doorbell among them) close only with the last one."""
    for status in Path(f"/proc/{pid}/task").glob("*/status"):
        try:
            if "\nState:\tZ" not in status.read_text():
                return True
        except OSError:  # that thread is gone
            continue
    return False


def _closing(port: int) -> int:
    """Server-side connections the client closed and the server has not closed yet (CLOSE_WAIT)."""
    return sum(
        1
        for line in Path("/proc/net/tcp").read_text().splitlines()[1:]
        if (fields := line.split())[3] == "08" and int(fields[1].split(":")[1], 16) == port
    )


def _served_per_worker(server: AuthServer, connections: list[socket.socket]) -> dict[int, float]:
    """One request on each connection; the requests each worker counted for them (a worker counts a request
    as its response goes out, so the count may trail the response by a moment)."""
    before = server.requests_by_worker(ROUTE)
    for connection in connections:
        _get(connection)
    deadline = time.monotonic() + DEADLINE_SECONDS
    while True:
        after = server.requests_by_worker(ROUTE)
        served = {pid: after[pid] - before.get(pid, 0) for pid in after if after[pid] > before.get(pid, 0)}
        if sum(served.values()) >= len(connections) or time.monotonic() > deadline:
            return served


def _burst_while_stopped(server: AuthServer, stopped: int, count: int) -> list[socket.socket]:
    """``count`` connections opened while worker ``stopped`` cannot run, so that the other accepts them all
    (as a race often leaves a burst: 4 of 50 on one worker, measured); ``stopped`` runs again after."""
    os.kill(stopped, signal.SIGSTOP)
    try:
        connections = _open(server, count)
        deadline = time.monotonic() + DEADLINE_SECONDS
        while _accept_queue(server.port):
            assert time.monotonic() < deadline, "the running worker never accepted the burst"
    finally:
        os.kill(stopped, signal.SIGCONT)
    return connections


def _assert_an_even_burst(server: AuthServer, *, stopped: int, other: int) -> None:
    """20 connections opened while ``stopped`` cannot accept: each worker serves half, give or take 2."""
    connections = _burst_while_stopped(server, stopped, 20)
    try:
        served = _served_per_worker(server, connections)
        assert abs(served.get(other, 0) - served.get(stopped, 0)) <= 2, served
    finally:
        _close_all(server, connections)


def _close_all(server: AuthServer, connections: list[socket.socket]) -> None:
    """Closes the connections, and waits until the workers have closed their side too."""
    for connection in connections:
        connection.close()
    deadline = time.monotonic() + DEADLINE_SECONDS
    while _closing(server.port):
        assert time.monotonic() < deadline, "the workers never closed"


def test_connections_accepted_by_one_worker_are_shared_with_the_other(server: AuthServer) -> None:
    """The running worker accepts every connection of the burst and hands half of them to the stopped one,
    which serves them once it runs again. Without the hand-over, the stopped worker would serve none."""
    accepting, stopped = _wait_for_workers(server, 2)
    connections = _burst_while_stopped(server, stopped, 20)
    try:
        served = _served_per_worker(server, connections)
        assert sorted(served) == [accepting, stopped], served
        assert abs(served[accepting] - served[stopped]) <= 2, served  # one request per connection
    finally:
        _close_all(server, connections)

    # The counts went back down with the connections: the next burst is as even.
    _assert_an_even_burst(server, stopped=stopped, other=accepting)


def test_a_worker_that_dies_loses_no_connection_and_its_successor_takes_its_share(
    server: AuthServer,
) -> None:
    survivor, killed = _wait_for_workers(server, 2)
    os.kill(killed, signal.SIGKILL)
    deadline = time.monotonic() + DEADLINE_SECONDS
    # A worker that dies while connections are handed to it loses them, as it loses its own: wait until it
    # is gone, which is what this test is about.
    while _alive(killed):
        assert time.monotonic() < deadline, "the killed worker never died"
    connections = _open(server, 10)  # the survivor would hand some to the dead worker's doorbell
    try:
        assert sum(_served_per_worker(server, connections).values()) == 10
    finally:
        _close_all(server, connections)

    successor = next(pid for pid in _wait_for_workers(server, 2, besides={killed}) if pid != survivor)
    _assert_an_even_burst(server, stopped=successor, other=survivor)


def test_with_balancing_off_the_worker_that_accepts_keeps_what_it_accepts(tmp_path: Path) -> None:
    """``AUTHSERVER_BALANCE_CONNECTIONS=false``: uvloop's own accept, as without the table."""
    with running_server(
        tmp_path / "unbalanced", workers=2, AUTHSERVER_BALANCE_CONNECTIONS="false"
    ) as unbalanced:
        accepting, stopped = _wait_for_workers(unbalanced, 2)
        connections = _burst_while_stopped(unbalanced, stopped, 10)
        try:
            assert _served_per_worker(unbalanced, connections) == {accepting: 10}
        finally:
            _close_all(unbalanced, connections)
