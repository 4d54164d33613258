"""A real Prometheus (Debian's ``prometheus``) scrapes a running auth server (2 workers, PostgreSQL) and a
running operator while the test drives traffic; then every expression of the Grafana dashboard and of the
alerts must return data with the labels its panel or annotations read.

One Prometheus run serves the whole module (live_stack.py says what runs). The traffic: client_credentials
tokens for an OAuthClient the operator registered, an authorization code and two refresh-token rotations,
a request with a wrong secret, an OAuthClient whose AuthServer does not exist (a failing reconcile), and a
burst beyond the per-IP rate limit and the in-flight limit (429s and 503s).

What each expression must return:
* dashboard targets (variables resolved: $namespace=platform, $authserver=auth, $__rate_interval=1m): at
  least one sample with a value (not NaN), every sample carrying the labels its legend reads;
* alerts: the expression without its threshold (and without an ``or vector(0)`` fallback, which would
  return data from nothing), with the labels its summary and description read;
* both: the argument of every ``by (...)`` aggregation carries every label it is grouped by, so that no
  grouping silently collapses into one series.
Expressions that read kube-state-metrics' custom resource metrics (files/kube-state-metrics-authyard.yaml)
are not checked here: no process in the tests exports those. promtool evaluates them instead
(test_promtool.py: alerts_test.yaml for the alerts, dashboard_test.yaml for the dashboard).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from harness.operator import PLATFORM, TEAM
from harness.polling import wait_for
from harness.ports import free_port
from harness.postgres import PostgresCluster, postgres_available
from tests.monitoring import dashboard
from tests.monitoring.live_stack import (
    SERVICE_MONITORS,
    ChartOperator,
    container_name,
    emulated_cluster,
    pod_name,
    start_chart_operator,
)
from tests.monitoring.prometheus_server import PrometheusServer, poll
from tests.monitoring.promql import (
    aggregations,
    kube_state_metric_names,
    legend_labels,
    metrics_in,
    reads_kube_state_metrics,
    template_labels,
    without_threshold,
)
from tests.monitoring.rule_files import REQUIRED_BY, alerts, rendered_rule, rule_file
from tests.monitoring.service_monitor import Pod, scrape_configs
from tests.operator.stack import Stack, clients_path, oauthclient, running_stack
from tests.packaging.helm_support import NAMESPACE
from tests.support.oauth import PASSWORD, authorize_code, basic
from tests.support.programs import require_program

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(not postgres_available(), reason="PostgreSQL server binaries not installed"),
]

AUTHSERVER = "auth"
REDIRECT_URI = "https://app.example.com/callback"
# Small limits, so that a short burst meets both: 429 from the per-IP rate limit, 503 from the in-flight one.
SERVER_ENV = {
    "AUTHSERVER_TOKEN_RATE_PER_IP": "1",
    "AUTHSERVER_TOKEN_BURST_PER_IP": "15",
    "AUTHSERVER_MAX_IN_FLIGHT": "2",
}
RATE_LIMIT_ATTEMPTS = 100
BURST_CONNECTIONS = 24
BURST_ROUNDS = 10
USERNAME = "monitoring-alice"


@dataclass
class Scraped:
    prometheus: PrometheusServer
    at: float  # the evaluation time of every query: after the traffic, scraped twice since
    statuses: Counter[int]  # /token answers of the traffic, by status

    def query(self, expression: str) -> list[dict[str, Any]]:
        return self.prometheus.query(expression, at=self.at)


async def _token(http: httpx.AsyncClient, client_id: str, secret: str) -> int:
    response = await http.post(
        "/token", data={"grant_type": "client_credentials"}, headers=basic(client_id, secret)
    )
    return response.status_code


async def _code_and_refresh_flow(
    http: httpx.AsyncClient, client: dict[str, Any], statuses: Counter[int]
) -> str:
    """An authorization code through the login and consent pages, redeemed, then two refresh rotations;
    the last refresh token."""
    code, verifier = await authorize_code(
        http, client["client_id"], REDIRECT_URI, USERNAME, scope="openid read"
    )
    client_auth = basic(client["client_id"], client["client_secret"])
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": REDIRECT_URI,
        "code_verifier": verifier,
    }
    for _ in range(3):
        response = await http.post("/token", data=form, headers=client_auth)
        statuses[response.status_code] += 1
        assert response.status_code == 200, response.text
        form = {"grant_type": "refresh_token", "refresh_token": response.json()["refresh_token"]}
    return form["refresh_token"]


async def _burst_until_refused(base_url: str, credentials: dict[str, str], statuses: Counter[int]) -> None:
    """More requests at once than the workers admit (new connections, spread over both workers), until some
    are refused with 503."""
    for _ in range(BURST_ROUNDS):
        limits = httpx.Limits(max_connections=BURST_CONNECTIONS)
        async with httpx.AsyncClient(base_url=base_url, timeout=30, limits=limits) as http:
            answers = await asyncio.gather(
                *(
                    _token(http, credentials["client_id"], credentials["client_secret"])
                    for _ in range(BURST_CONNECTIONS)
                )
            )
        statuses.update(answers)
        if 503 in answers:
            return
    raise AssertionError(f"no 503 in {BURST_ROUNDS} bursts of {BURST_CONNECTIONS}: {statuses}")


async def _drive_traffic(stack: Stack, kube: Any, prometheus: PrometheusServer) -> Counter[int]:
    statuses: Counter[int] = Counter()
    server = stack.server
    # The CLI starts a process: create the user while the operator registers the OAuthClients.
    user = asyncio.create_task(asyncio.to_thread(server.create_user, USERNAME, PASSWORD))
    registered = await stack.admin(
        "PUT",
        "/admin/clients/monitoring-web-app",
        json={"name": "monitoring web app", "grant_types": ["authorization_code", "refresh_token"],
              "scopes": ["openid", "read"], "redirect_uris": [REDIRECT_URI]},
    )  # fmt: skip
    assert registered.status_code in (200, 201), registered.text
    code_client = registered.json()
    stack.seen_secrets.add(code_client["client_secret"])
    # An OAuthClient the operator registers, and one whose AuthServer does not exist: every reconcile of
    # that one fails (Ready=False).
    await kube.post(clients_path(TEAM), oauthclient("orders"))
    await kube.post(
        clients_path(TEAM), oauthclient("orphan", authServerRef={"name": "missing", "namespace": PLATFORM})
    )
    await wait_for(lambda: stack.is_ready("orders"), timeout=60, message="OAuthClient orders not Ready")
    await wait_for(lambda: stack.ready("orphan").get("status") == "False", timeout=60)
    credentials = stack.secret("orders-oauth")
    await user
    # Prometheus samples the counters before the requests below increment them: rate() counts the increments
    # between two samples, so a series first sampled after its increments would show a rate of 0.
    await asyncio.to_thread(prometheus.wait_for_scrapes_after, time.time())

    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as http:
        for _ in range(3):
            statuses[await _token(http, credentials["client_id"], credentials["client_secret"])] += 1
        statuses[await _token(http, credentials["client_id"], "not-the-secret")] += 1
        server.seen_secrets.add(await _code_and_refresh_flow(http, code_client, statuses))
        # Past the per-IP burst: one connection, so one worker's bucket.
        for _ in range(RATE_LIMIT_ATTEMPTS):
            status = await _token(http, credentials["client_id"], credentials["client_secret"])
            statuses[status] += 1
            if status == 429:
                break
    # Refusals, and again once Prometheus has sampled the first ones: a series born with the first refusals
    # must grow between two samples too.
    await _burst_until_refused(server.base_url, credentials, statuses)
    await asyncio.to_thread(prometheus.wait_for_scrapes_after, time.time())
    await _burst_until_refused(server.base_url, credentials, statuses)
    return statuses


@pytest.fixture(scope="module")
async def scraped(
    postgres_cluster: PostgresCluster, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Scraped]:
    require_program("prometheus", REQUIRED_BY)
    directory = tmp_path_factory.mktemp("monitoring")
    chart = await asyncio.to_thread(ChartOperator.render)
    operator_metrics_port = free_port()
    async with emulated_cluster() as (emulator, kube):

        async def start_operator(issuer: str) -> Any:
            return await start_chart_operator(emulator, chart, issuer, directory, operator_metrics_port)

        async with running_stack(
            emulator, kube, postgres_cluster, directory, start_operator, workers=2, server_env=SERVER_ENV
        ) as stack:
            monitor = await wait_for(lambda: emulator.get(SERVICE_MONITORS, PLATFORM, AUTHSERVER), timeout=30)
            service = emulator.get("v1/services", PLATFORM, AUTHSERVER)
            deployment = emulator.get("apps/v1/deployments", PLATFORM, AUTHSERVER)
            server_pod = Pod(
                pod_name(deployment), container_name(deployment), f"127.0.0.1:{stack.server.port}"
            )
            jobs = [
                *scrape_configs(monitor, service, [server_pod]),
                *scrape_configs(
                    chart.service_monitor, chart.service, [chart.scraped_pod(operator_metrics_port)]
                ),
            ]
            prometheus = PrometheusServer(
                directory / "prometheus", jobs, rule_file(rendered_rule("defaults"))
            )
            try:
                await asyncio.to_thread(prometheus.start)
                statuses = await _drive_traffic(stack, kube, prometheus)
                done = time.time()
                await asyncio.to_thread(prometheus.wait_for_scrapes_after, done)
                yield Scraped(prometheus, time.time(), statuses)
            finally:
                await asyncio.to_thread(prometheus.stop)


# --- the scrape itself -------------------------------------------------------------------------------------


def test_the_traffic_met_every_answer_the_panels_show(scraped: Scraped) -> None:
    """Tokens, a wrong secret, rate-limited and overloaded requests: the data the panels below must show."""
    assert {200, 401, 429, 503} <= set(scraped.statuses), scraped.statuses


def test_targets_carry_the_labels_the_service_monitors_give_them(scraped: Scraped) -> None:
    labels = {target["scrapePool"]: target["labels"] for target in scraped.prometheus.targets()}
    assert all(target["health"] == "up" for target in scraped.prometheus.targets())
    server = labels[f"serviceMonitor/{PLATFORM}/{AUTHSERVER}/0"]
    assert {key: server[key] for key in ("namespace", "service", "job", "endpoint")} == {
        "namespace": PLATFORM, "service": AUTHSERVER, "job": AUTHSERVER, "endpoint": "http"
    }  # fmt: skip
    assert server["pod"].startswith(f"{AUTHSERVER}-") and server["container"]
    (operator,) = [
        value for pool, value in labels.items() if pool != f"serviceMonitor/{PLATFORM}/{AUTHSERVER}/0"
    ]
    assert operator["namespace"] == NAMESPACE and operator["endpoint"] == "metrics"
    assert operator["service"].endswith("-metrics") and operator["pod"]


def test_dashboard_variables_offer_the_authserver(scraped: Scraped) -> None:
    queries = dashboard.variable_queries(dashboard.load())
    assert {query.name for query in queries} == set(dashboard.VARIABLE_VALUES)
    for query in queries:
        offered = scraped.prometheus.label_values(query.label, dashboard.resolve(query.selector))
        assert dashboard.VARIABLE_VALUES[query.name] in offered, (query, offered)


# --- every expression --------------------------------------------------------------------------------------


def _problems(scraped: Scraped, expression: str, labels_read: set[str]) -> list[str]:
    """What is wrong with what ``expression`` returns (empty: nothing)."""
    problems = []
    samples = scraped.query(expression)
    if not samples:
        return [f"no data: {expression}"]
    if all(math.isnan(float(sample["value"][1])) for sample in samples):
        problems.append(f"only NaN: {expression} -> {samples}")
    for sample in samples:
        missing = {label for label in labels_read if not sample["metric"].get(label)}
        if missing:
            problems.append(f"series without {sorted(missing)}: {sample['metric']} of {expression}")
    for aggregation in aggregations(expression):
        argument = scraped.query(aggregation.argument)
        if not argument:
            problems.append(f"no data: {aggregation.argument}")
        for sample in argument:
            missing = {label for label in aggregation.labels if not sample["metric"].get(label)}
            if missing:
                problems.append(
                    f"grouped by {sorted(missing)} that {sample['metric']} lacks: {aggregation.argument}"
                )
    return problems


LIVE_TARGETS = [
    target for target in dashboard.targets(dashboard.load()) if not reads_kube_state_metrics(target.expr)
]


@pytest.mark.parametrize("target", LIVE_TARGETS, ids=[target.id for target in LIVE_TARGETS])
def test_dashboard_expression_returns_data_with_the_labels_its_legend_reads(
    scraped: Scraped, target: dashboard.Target
) -> None:
    expression = dashboard.resolve(target.expr)
    assert _problems(scraped, expression, legend_labels(target.legend_format)) == []


def test_every_alert_expression_returns_data_with_the_labels_its_annotations_read(scraped: Scraped) -> None:
    live = {
        name: rule
        for name, rule in alerts(rendered_rule()).items()
        if not reads_kube_state_metrics(rule["expr"])
    }
    problems = []
    for name, rule in sorted(live.items()):
        expression = without_threshold(rule["expr"])
        labels_read = template_labels(*rule["annotations"].values())
        problems += [f"{name}: {problem}" for problem in _problems(scraped, expression, labels_read)]
    assert problems == []


def test_only_kube_state_metrics_expressions_are_left_to_promtool() -> None:
    """An expression that is not checked here reads nothing but kube-state-metrics' metrics: no part of it
    that a process here exports goes unchecked."""
    left = [
        rule["expr"] for rule in alerts(rendered_rule()).values() if reads_kube_state_metrics(rule["expr"])
    ]
    left += [target.expr for target in dashboard.targets(dashboard.load()) if target not in LIVE_TARGETS]
    assert left, "nothing reads kube-state-metrics: drop this distinction"
    for expression in left:
        assert metrics_in(expression) <= kube_state_metric_names(), expression


# --- the alerts as the real Prometheus evaluates them ----------------------------------------------------


def _pending_or_firing(scraped: Scraped) -> dict[str, list[dict[str, str]]]:
    found: dict[str, list[dict[str, str]]] = {}
    for sample in scraped.prometheus.query("ALERTS"):
        found.setdefault(sample["metric"]["alertname"], []).append(sample["metric"])
    return found


def test_the_traffic_puts_the_alerts_it_should_in_pending_and_no_other(scraped: Scraped) -> None:
    """The rendered rules, loaded into the real Prometheus: the overload's 503s take the token error ratio
    over its threshold and the orphan OAuthClient's reconciles fail, so both alerts are pending (their
    ``for`` has not passed); a leader and two published signing keys keep those alerts silent."""
    expected = {
        "AuthyardTokenEndpointErrorRate": {
            "namespace": PLATFORM,
            "service": AUTHSERVER,
            "severity": "critical",
        },
        "AuthyardOperatorReconcileFailures": {
            "namespace": NAMESPACE,
            "kind": "OAuthClient",
            "severity": "warning",
        },
    }

    def all_pending() -> dict[str, list[dict[str, str]]] | None:
        found = _pending_or_firing(scraped)
        return found if set(expected) <= set(found) else None

    found = poll(all_pending, 30, lambda: f"pending: {_pending_or_firing(scraped)}", interval=0.5)
    for name, labels in expected.items():
        assert any(
            labels.items() <= alert.items() and alert["alertstate"] == "pending" for alert in found[name]
        )
    silent = {"AuthyardOperatorNoLeader", "AuthyardOperatorSplitBrain", "AuthyardSigningKeysNextKeyMissing"}
    assert silent <= set(alerts(rendered_rule())) and not silent & set(found), found
