"""A ServiceMonitor turned into a Prometheus scrape job the way the Prometheus Operator does it, for
processes on loopback instead of pods.

In a cluster the Prometheus Operator generates, for each endpoint of a ServiceMonitor, a job with Kubernetes
service discovery (role ``endpoints``) and relabelling rules: keep the Services the selector matches and the
port the endpoint names, then set ``namespace``, ``service``, ``pod``, ``container``, ``job`` and ``endpoint``
from the discovered ``__meta_kubernetes_*`` labels. Those are the labels the chart's alerts and dashboard
group by: the server's own metrics carry none of them.

Here there is no service discovery, so each process is a static target carrying the ``__meta_kubernetes_*``
labels that discovery would have found for it (taken from the real Service and Deployment objects), and the
same relabelling rules run on them in the real Prometheus. The one change: the scrape interval is short, so
that a test does not wait for the ServiceMonitor's 30 s.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

_INVALID_LABEL_CHARACTERS = re.compile(r"[^a-zA-Z0-9_]")


@dataclass(frozen=True)
class Pod:
    """A process standing in for a pod behind the Service: its name, container and ``host:port``."""

    name: str
    container: str
    address: str


def _label_name(name: str) -> str:
    """A Kubernetes label name as service discovery writes it into a meta label."""
    return _INVALID_LABEL_CHARACTERS.sub("_", name)


def _discovered_labels(service: dict[str, Any], port_name: str, pod: Pod) -> dict[str, str]:
    """What Kubernetes service discovery (role endpoints) reports for one address of the Service."""
    meta = service["metadata"]
    labels = {
        "__meta_kubernetes_namespace": meta["namespace"],
        "__meta_kubernetes_service_name": meta["name"],
        "__meta_kubernetes_endpoint_port_name": port_name,
        "__meta_kubernetes_endpoint_address_target_kind": "Pod",
        "__meta_kubernetes_endpoint_address_target_name": pod.name,
        "__meta_kubernetes_pod_name": pod.name,
        "__meta_kubernetes_pod_container_name": pod.container,
        "__meta_kubernetes_pod_phase": "Running",
    }
    for name, value in (meta.get("labels") or {}).items():
        labels[f"__meta_kubernetes_service_label_{_label_name(name)}"] = value
        labels[f"__meta_kubernetes_service_labelpresent_{_label_name(name)}"] = "true"
    return labels


def _relabel_configs(monitor: dict[str, Any], endpoint: dict[str, Any]) -> list[dict[str, Any]]:
    """The Prometheus Operator's relabelling for one ServiceMonitor endpoint (matchLabels selectors)."""
    selector = monitor["spec"]["selector"]
    assert set(selector) == {"matchLabels"}, f"only matchLabels selectors are emulated: {selector}"
    rules: list[dict[str, Any]] = [
        {
            "action": "keep",
            "source_labels": [
                f"__meta_kubernetes_service_label_{_label_name(name)}",
                f"__meta_kubernetes_service_labelpresent_{_label_name(name)}",
            ],
            "regex": f"({re.escape(value)});true",
        }
        for name, value in selector["matchLabels"].items()
    ]
    rules += [
        {
            "action": "keep",
            "source_labels": ["__meta_kubernetes_endpoint_port_name"],
            "regex": endpoint["port"],
        },
        {
            "source_labels": [
                "__meta_kubernetes_endpoint_address_target_kind",
                "__meta_kubernetes_endpoint_address_target_name",
            ],
            "separator": ";",
            "regex": "Pod;(.*)",
            "replacement": "${1}",
            "target_label": "pod",
        },
        {"source_labels": ["__meta_kubernetes_namespace"], "target_label": "namespace"},
        {"source_labels": ["__meta_kubernetes_service_name"], "target_label": "service"},
        {"source_labels": ["__meta_kubernetes_pod_name"], "target_label": "pod"},
        {"source_labels": ["__meta_kubernetes_pod_container_name"], "target_label": "container"},
        {"action": "drop", "source_labels": ["__meta_kubernetes_pod_phase"], "regex": "(Failed|Succeeded)"},
        {"source_labels": ["__meta_kubernetes_service_name"], "target_label": "job", "replacement": "${1}"},
        {"target_label": "endpoint", "replacement": endpoint["port"]},
    ]
    return rules


def scrape_configs(
    monitor: dict[str, Any], service: dict[str, Any], pods: list[Pod], interval: str = "1s"
) -> list[dict[str, Any]]:
    """One scrape job per endpoint of ``monitor``, scraping ``pods`` as the Service's endpoints."""
    meta = monitor["metadata"]
    monitored_namespaces = monitor["spec"].get("namespaceSelector", {}).get("matchNames", [meta["namespace"]])
    assert service["metadata"]["namespace"] in monitored_namespaces, "the ServiceMonitor does not watch it"
    jobs = []
    for index, endpoint in enumerate(monitor["spec"]["endpoints"]):
        port_names = {port["name"] for port in service["spec"]["ports"]}
        assert endpoint["port"] in port_names, f"the Service has no port {endpoint['port']}: {port_names}"
        jobs.append(
            {
                "job_name": f"serviceMonitor/{meta['namespace']}/{meta['name']}/{index}",
                "honor_labels": bool(endpoint.get("honorLabels", False)),
                "scrape_interval": interval,
                "scrape_timeout": interval,
                "metrics_path": endpoint.get("path", "/metrics"),
                "static_configs": [
                    {"targets": [pod.address], "labels": _discovered_labels(service, endpoint["port"], pod)}
                    for pod in pods
                ],
                "relabel_configs": _relabel_configs(monitor, endpoint),
            }
        )
    return jobs
