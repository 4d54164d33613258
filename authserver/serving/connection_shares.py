"""How many connections each worker of one server holds, in a small table that every worker maps.

Workers share one listening socket, and whichever wakes first accepts. Left to that race, a burst of
connections (a client's pool opening, a load balancer reconnecting) lands unevenly, as unevenly as 4 of 50
on one worker and 46 on the other. Requests then queue on one worker while the other has CPU to spare, and
the busier worker's latency becomes the server's p99. ``balanced_loop.py`` hands each new connection to
the worker holding the fewest, read from this table (Envoy balances its threads the same way,
``exact_balance``; Node's cluster module hands connections to its workers for the same reason).

The table lives in a private directory (mode 0700) that ``authserver serve`` creates for its workers; each
worker's doorbell, the Unix socket through which it receives connections handed to it, sits beside it.

One slot per worker: its pid, the connections it holds, how many it has been handed and how many of those
it has received. A worker's own fields are written by it alone, without a lock, on every connection it
opens or closes; ``handed`` is written by the workers that hand over, under the table's lock, so that a
connection on its way counts at once (a burst would otherwise all go to the worker that looked emptiest).
Reads take no lock: a decision made on a count a moment old costs at most a connection's worth of balance.
"""

from __future__ import annotations

import contextlib
import fcntl
import mmap
import os
import struct
import tempfile
from collections.abc import Iterator

ENV = "AUTHSERVER_CONNECTION_SHARES"  # the table's directory, set by ``authserver serve`` for its workers
SLOTS = 32
_FIELDS = 4  # pid, connections, handed, received
_SLOT = struct.Struct(f"={_FIELDS}q")
_TABLE = struct.Struct(f"={_FIELDS * SLOTS}q")
_TABLE_FILE = "connections"


def create(parent: str | None = None) -> str:
    """A new private directory with an empty table; the caller removes it when the server stops."""
    directory = tempfile.mkdtemp(
        prefix="authserver-connections-", dir=parent
    )  # 0700: only this user hands over
    with open(os.path.join(directory, _TABLE_FILE), "wb") as table:
        table.write(bytes(_TABLE.size))
    return directory


def doorbell(directory: str, pid: int) -> str:
    """The path of the Unix socket on which worker ``pid`` receives connections; bound before the worker
    takes a slot, so that a worker in the table can always be reached (or is gone)."""
    return os.path.join(directory, f"{pid}.sock")


class NoFreeSlot(Exception):
    """More workers than the table has slots: this one accepts on its own, unbalanced."""


class ConnectionShares:
    """This worker's slot in the table, and its view of the others'."""

    def __init__(self, directory: str, pid: int | None = None) -> None:
        self.directory = directory
        self.pid = os.getpid() if pid is None else pid
        self._file = open(os.path.join(directory, _TABLE_FILE), "r+b")  # held open for the lock
        self._map = mmap.mmap(self._file.fileno(), _TABLE.size)
        self.connections = 0
        self._received = 0
        try:
            with self._locked():
                self._slot = self._free_slot()
                _SLOT.pack_into(self._map, self._offset(self._slot), self.pid, 0, 0, 0)
        except NoFreeSlot:
            self._close()
            raise

    def opened(self) -> None:
        self.connections += 1
        self._publish(1, self.connections)

    def closed(self) -> None:
        self.connections -= 1
        self._publish(1, self.connections)

    def received(self) -> None:
        """A connection handed to this worker arrived: it now holds it."""
        self._received += 1
        self.connections += 1
        self._publish(3, self._received)
        self._publish(1, self.connections)

    def fewest(self) -> int | None:
        """The pid of the worker holding the fewest connections, when that is at least two fewer than this
        one holds: a difference of one is as even as connections come, and handing over costs more than
        accepting (under churn, connections would go back and forth)."""
        table = _TABLE.unpack_from(self._map)
        mine = self._offset(self._slot) // 8
        fewest, pid = table[mine + 1] + table[mine + 2] - table[mine + 3] - 1, None
        for index in range(0, _FIELDS * SLOTS, _FIELDS):
            other = table[index]
            if other and index != mine:
                holds = table[index + 1] + table[index + 2] - table[index + 3]
                if holds < fewest:
                    fewest, pid = holds, other
        return pid

    def hand_over(self, pid: int) -> bool:
        """Counts a connection on its way to worker ``pid``; False if ``pid`` has no slot any more."""
        return self._add_handed(pid, 1)

    def take_back(self, pid: int) -> None:
        """Undoes ``hand_over`` when the connection could not be sent."""
        self._add_handed(pid, -1)

    def forget(self, pid: int) -> None:
        """Frees the slot of a worker that is gone (its doorbell refused a connection)."""
        with self._locked():
            index = self._index_of(pid)
            if index is not None:
                _SLOT.pack_into(self._map, self._offset(index), 0, 0, 0, 0)

    def leave(self) -> None:
        if self._map.closed:
            return
        with self._locked():
            _SLOT.pack_into(self._map, self._offset(self._slot), 0, 0, 0, 0)
        self._close()

    def _close(self) -> None:
        self._map.close()
        self._file.close()

    def _publish(self, field: int, value: int) -> None:
        struct.pack_into("=q", self._map, self._offset(self._slot) + 8 * field, value)

    def _add_handed(self, pid: int, change: int) -> bool:
        with self._locked():
            index = self._index_of(pid)
            if index is None:
                return False
            offset = self._offset(index) + 16
            (handed,) = struct.unpack_from("=q", self._map, offset)
            struct.pack_into("=q", self._map, offset, handed + change)
        return True

    def _free_slot(self) -> int:
        for index in range(SLOTS):
            (pid,) = struct.unpack_from("=q", self._map, self._offset(index))
            if pid in (0, self.pid) or not _alive(pid):
                return index
        raise NoFreeSlot(f"more than {SLOTS} workers share one listening socket")

    def _index_of(self, pid: int) -> int | None:
        for index in range(SLOTS):
            if struct.unpack_from("=q", self._map, self._offset(index))[0] == pid:
                return index
        return None

    @staticmethod
    def _offset(index: int) -> int:
        return _SLOT.size * index

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        fcntl.flock(self._file.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(self._file.fileno(), fcntl.LOCK_UN)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def directory_from_environment() -> str | None:
    """The table's directory, when ``authserver serve`` made one for its workers."""
    return os.environ.get(ENV) or None
