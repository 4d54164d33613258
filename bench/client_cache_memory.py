"""The memory the server's client cache takes for N registered clients, measured with tracemalloc.

``.venv/bin/python -m bench.client_cache_memory --clients 10 10000``: for each N, a throwaway SQLite database
(migrated by ``authserver migrate``) gets N client_credentials clients (bench/seed.py), and a real
``ClientCache`` over the real store (as web/services.py builds it, with a TTL long enough that nothing
expires mid-measurement) reads every one of them, as N clients asking for tokens would. Reported: the
Python heap traced after one client was read (statements compiled, pool open) and after all N, the
difference per client, and what is freed when the cache goes (what it alone held).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import sys
import tempfile
import tracemalloc
from dataclasses import asdict, dataclass
from pathlib import Path

from authserver.config import Settings
from authserver.storage.backends import store_for
from authserver.storage.client_cache import ClientCache
from authserver.storage.engine import create_engine
from bench import seed
from harness.authserver import run_cli
from harness.processes import clean_environment

TTL_SECONDS = 3600.0


@dataclass
class Result:
    clients: int
    heap_after_one_kib: float
    heap_after_all_kib: float
    grew_kib: float
    bytes_per_client: int
    freed_with_the_cache_kib: float


def traced() -> int:
    gc.collect()
    return tracemalloc.get_traced_memory()[0]


async def measure(database_url: str, count: int) -> Result:
    engine = create_engine(Settings(database_url=database_url))  # type: ignore[call-arg]
    try:
        store = store_for(engine)
        cache = ClientCache(store.get_client, TTL_SECONDS)
        ids = [f"{seed.MANY_CLIENTS_PREFIX}{index:06d}" for index in range(count)]
        tracemalloc.start()
        assert await cache.get(ids[0]) is not None
        one = traced()
        for client_id in ids:
            assert await cache.get(client_id) is not None
        everything = traced()
        del cache
        freed = everything - traced()
        tracemalloc.stop()
    finally:
        await engine.dispose()
    return Result(
        clients=count,
        heap_after_one_kib=round(one / 1024, 1),
        heap_after_all_kib=round(everything / 1024, 1),
        grew_kib=round((everything - one) / 1024, 1),
        bytes_per_client=round((everything - one) / max(count - 1, 1)),
        freed_with_the_cache_kib=round(freed / 1024, 1),
    )


def run_once(count: int, directory: Path) -> Result:
    directory.mkdir(parents=True)
    url = f"sqlite+aiosqlite:///{directory / 'authserver.db'}"
    env = clean_environment(AUTHSERVER_DATABASE_URL=url, AUTHSERVER_LOG_LEVEL="warning")
    run_cli(["migrate"], env, directory)
    seed.seed_service_clients(url, count, directory / "clients.txt")
    return asyncio.run(measure(url, count))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, nargs="+", default=[10, 10_000], help="values of N")
    args = parser.parse_args()
    if any(not 1 <= count <= 100_000 for count in args.clients):
        parser.error("--clients must be between 1 and 100,000")
    print(
        "| clients | heap after 1 (KiB) | after all (KiB) | grew (KiB) | per client (bytes) "
        "| freed with the cache (KiB) |"
    )
    print("|---:|---:|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory(prefix="authyard-client-cache-") as tmp:
        for count in args.clients:
            r = run_once(count, Path(tmp) / f"n{count}")
            print(json.dumps(asdict(r)), file=sys.stderr)
            print(
                f"| {r.clients:,} | {r.heap_after_one_kib} | {r.heap_after_all_kib} | {r.grew_kib} | "
                f"{r.bytes_per_client:,} | {r.freed_with_the_cache_kib} |"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
