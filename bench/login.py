"""Interactive login throughput: parallel browsers through GET /authorize and POST /authorize/login
(argon2id), a bounded number of them for a bounded time, with a bounded asyncio httpx client."""

from __future__ import annotations

import asyncio
import html
import re
import secrets
import time

import httpx

from authserver.protocol.pkce import s256
from bench.seed import REDIRECT_URI, USER_SCOPE, USERNAME, WEB_CLIENT_ID

_HIDDEN = re.compile(r'<input type="hidden" name="(request|csrf_token)" value="([^"]*)"')


def _percentile(values: list[float], fraction: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def _login_once(client: httpx.AsyncClient, password: str) -> bool:
    client.cookies.clear()  # a new browser each time: no session, a new CSRF cookie
    verifier = secrets.token_urlsafe(32)
    page = await client.get(
        "/authorize",
        params={
            "response_type": "code",
            "client_id": WEB_CLIENT_ID,
            "redirect_uri": REDIRECT_URI,
            "scope": USER_SCOPE,
            "state": secrets.token_urlsafe(8),
            "code_challenge": s256(verifier),
            "code_challenge_method": "S256",
        },
    )
    fields = {name: html.unescape(value) for name, value in _HIDDEN.findall(page.text)}
    if page.status_code != 200 or set(fields) != {"request", "csrf_token"}:
        return False
    answer = await client.post(
        "/authorize/login", data={**fields, "username": USERNAME, "password": password}
    )
    # Success renders the consent page (200); a wrong password re-renders the login page with 401.
    return answer.status_code == 200 and 'action="/authorize/consent"' in answer.text


async def measure(base_url: str, password: str, concurrency: int, duration: float) -> dict[str, float]:
    """``concurrency`` browsers log in back to back until ``duration`` has passed; logins/s and latency."""
    if not base_url.startswith("http://127.0.0.1:"):
        raise ValueError("the benchmark only sends traffic to 127.0.0.1")
    deadline = time.monotonic() + duration
    latencies: list[float] = []
    failures = 0

    async def browser() -> None:
        nonlocal failures
        limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
        async with httpx.AsyncClient(base_url=base_url, timeout=30.0, limits=limits) as client:
            while time.monotonic() < deadline:
                started = time.monotonic()
                try:
                    ok = await _login_once(client, password)
                except httpx.HTTPError:
                    ok = False
                if ok:
                    latencies.append(time.monotonic() - started)
                else:
                    failures += 1

    started = time.monotonic()
    await asyncio.wait_for(asyncio.gather(*(browser() for _ in range(concurrency))), timeout=duration + 60)
    elapsed = time.monotonic() - started
    return {
        "concurrency": concurrency,
        "logins": len(latencies),
        "failures": failures,
        "seconds": round(elapsed, 3),
        "logins_per_s": len(latencies) / elapsed if elapsed > 0 else 0.0,
        "p50_ms": _percentile(latencies, 0.50) * 1000,
        "p99_ms": _percentile(latencies, 0.99) * 1000,
    }
