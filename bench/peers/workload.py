"""What one wrk run against one server needs, and what every server in the comparison provides."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from bench.wrk import LUA_DIR
from harness.processes import ServerProcess

PEER_LUA_DIR = Path(__file__).resolve().parent / "lua"

# Every endpoint of the comparison, in the order of the table. Consuming scenarios spend seeded credentials.
SCENARIOS = (
    "ceiling",
    "metadata",
    "jwks",
    "client_credentials",
    "introspection",
    "refresh_token",
    "authorization_code",
    "password",
)
CONSUMING = frozenset({"refresh_token", "authorization_code"})


def bench_script(name: str) -> str:
    """A script of ``bench/lua`` (the one the main benchmark runs)."""
    return str(LUA_DIR / name)


def peer_script(name: str) -> str:
    """A script of ``bench/peers/lua``: what only the peers run (Authly's password grant)."""
    return str(PEER_LUA_DIR / name)


@dataclass(frozen=True)
class Workload:
    script: str
    url: str
    env: dict[str, str] = field(default_factory=dict)
    token_file: Path | None = None


class Target(Protocol):
    """A running server in the comparison."""

    label: str
    server: ServerProcess

    def scenarios(self) -> frozenset[str]: ...

    def workload(self, scenario: str, count: int) -> Workload:
        """The wrk run for ``scenario``; ``count`` credentials are seeded first for a consuming one."""
        ...
