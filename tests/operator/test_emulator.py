"""Tests of the emulated Kubernetes API (AuthyardEmulator) through real HTTP clients, and of the kopf
harness with a throwaway operator. What the emulator adds to kmock is what these tests pin down."""

from __future__ import annotations

import asyncio
import base64
import json
import sys
import textwrap
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import kopf
import pytest

from harness.kube import AUTHSERVERS, custom_resource, service_monitor_crd
from harness.kube_emulator import DEPLOYMENTS, AuthyardEmulator
from harness.operator import OperatorProcess
from harness.polling import wait_for
from tests.operator import kopf_harness
from tests.operator.kopf_harness import OperatorRun, kopf_command, run_operator
from tests.operator.kubeapi import APPLY, STRATEGIC, ApiException, KubeApi, api_error

NS = "default"
CM = f"/api/v1/namespaces/{NS}/configmaps"
AS = f"/apis/authyard.dev/v1alpha1/namespaces/{NS}/authservers"
DEPLOY = f"/apis/apps/v1/namespaces/{NS}/deployments"


def configmap(name: str, data: dict[str, str] | None = None, **metadata: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, **metadata},
        "data": data or {},
    }


def authserver(name: str, spec: dict[str, Any] | None = None) -> dict[str, Any]:
    return custom_resource("AuthServer", name, NS, spec or {})


def owner_ref(owner: dict[str, Any], *, controller: bool = True) -> dict[str, Any]:
    return {
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": owner["metadata"]["name"],
        "uid": owner["metadata"]["uid"],
        "controller": controller,
        "blockOwnerDeletion": True,
    }


def base_url(emulator: AuthyardEmulator) -> str:
    return str(emulator.url).rstrip("/")


async def failure(coro: Any) -> tuple[int, dict[str, Any]]:
    with pytest.raises(ApiException) as info:
        await coro
    return int(info.value.status), api_error(info.value)


# --- metadata the server maintains -------------------------------------------------------------------


async def test_create_stamps_uid_resource_version_timestamp_generation(kube: KubeApi) -> None:
    first = await kube.post(CM, configmap("one"))
    second = await kube.post(CM, configmap("two"))
    for obj in (first, second):
        meta = obj["metadata"]
        assert meta["uid"] and meta["creationTimestamp"].endswith("Z") and meta["generation"] == 1
    assert first["metadata"]["uid"] != second["metadata"]["uid"]
    assert int(second["metadata"]["resourceVersion"]) > int(first["metadata"]["resourceVersion"])
    assert (await kube.get(f"{CM}/one")) == first

    status, body = await failure(kube.post(CM, configmap("one")))
    assert (status, body["kind"], body["reason"]) == (409, "Status", "AlreadyExists")
    status, body = await failure(kube.get(f"{CM}/absent"))
    assert (status, body["reason"]) == (404, "NotFound")


async def test_generate_name_and_name_validation(kube: KubeApi) -> None:
    created = await kube.post(CM, {"metadata": {"generateName": "ev-"}, "data": {}})
    assert created["metadata"]["name"].startswith("ev-") and len(created["metadata"]["name"]) == 8
    status, _ = await failure(kube.post(CM, configmap("Not_Valid")))
    assert status == 422
    status, _ = await failure(kube.post(CM, configmap("ok", labels={"app": "x" * 64})))
    assert status == 422


async def test_generation_counts_changes_outside_metadata_and_status(kube: KubeApi) -> None:
    created = await kube.post(AS, authserver("gen"))
    rv = created["metadata"]["resourceVersion"]
    assert created["metadata"]["generation"] == 1

    labelled = await kube.merge(f"{AS}/gen", {"metadata": {"labels": {"team": "a"}}})
    assert labelled["metadata"]["generation"] == 1
    assert int(labelled["metadata"]["resourceVersion"]) > int(rv)

    changed = await kube.merge(f"{AS}/gen", {"spec": {"workers": 2}})
    assert changed["metadata"]["generation"] == 2

    # A write that changes nothing is a no-op: same resourceVersion (and no watch event).
    same = await kube.merge(f"{AS}/gen", {"spec": {"workers": 2}})
    assert same["metadata"]["resourceVersion"] == changed["metadata"]["resourceVersion"]

    status = await kube.merge(f"{AS}/gen/status", {"status": {"observedGeneration": 2}})
    assert status["metadata"]["generation"] == 2 and status["status"]["observedGeneration"] == 2


async def test_status_subresource(kube: KubeApi) -> None:
    created = await kube.post(AS, {**authserver("st"), "status": {"phase": "ignored on create"}})
    assert "status" not in created

    # /status changes only .status: spec and metadata in the body are ignored.
    patched = await kube.merge(
        f"{AS}/st/status",
        {"metadata": {"labels": {"x": "y"}}, "spec": {"workers": 5}, "status": {"replicas": 1}},
    )
    assert patched["status"] == {
        "replicas": 1,
        "conditions": [],
    }  # the schema's default applies to status too
    assert patched["spec"]["workers"] == 1 and "labels" not in patched["metadata"]
    pruned = await kube.merge(f"{AS}/st/status", {"status": {"unknown": True}})
    assert pruned["status"] == {"replicas": 1, "conditions": []}  # unknown fields pruned

    # The object's endpoint never changes .status (patch, put, apply).
    patched = await kube.merge(f"{AS}/st", {"spec": {"workers": 3}, "status": {"replicas": 7}})
    assert patched["status"]["replicas"] == 1 and patched["spec"]["workers"] == 3
    replaced = await kube.put(f"{AS}/st", {**patched, "status": {"replicas": 8}})
    assert replaced["status"]["replicas"] == 1
    applied = await kube.apply(f"{AS}/st", {**authserver("st", {"workers": 3}), "status": {"replicas": 9}})
    assert applied["status"]["replicas"] == 1

    # Resources without a status subresource have no /status endpoint.
    await kube.post(CM, configmap("nostatus"))
    status, _ = await failure(kube.merge(f"{CM}/nostatus/status", {"status": {}}))
    assert status == 404


# --- patches ---------------------------------------------------------------------------------------


async def test_merge_patch_follows_rfc7386(kube: KubeApi) -> None:
    await kube.post(
        CM, {**configmap("mp", {"a": "1", "b": "2"}), "metadata": {"name": "mp", "labels": {"k": "v"}}}
    )
    patched = await kube.merge(f"{CM}/mp", {"data": {"a": None, "c": "3"}, "metadata": {"labels": None}})
    assert patched["data"] == {"b": "2", "c": "3"}
    assert "labels" not in patched["metadata"]

    await kube.post(
        DEPLOY,
        {
            "metadata": {"name": "lists"},
            "spec": {
                "template": {
                    "spec": {"containers": [{"name": "a", "image": "a:1"}, {"name": "b", "image": "b:1"}]}
                }
            },
        },
    )
    patched = await kube.merge(
        f"{DEPLOY}/lists", {"spec": {"template": {"spec": {"containers": [{"name": "a", "image": "a:2"}]}}}}
    )
    assert patched["spec"]["template"]["spec"]["containers"] == [{"name": "a", "image": "a:2"}]  # replaced


async def test_json_patch_and_its_failed_test_is_422(kube: KubeApi) -> None:
    created = await kube.post(CM, configmap("jp", {"a": "1"}))
    rv = created["metadata"]["resourceVersion"]
    patched = await kube.json_patch(
        f"{CM}/jp",
        [
            {"op": "test", "path": "/metadata/resourceVersion", "value": rv},
            {"op": "add", "path": "/data/b", "value": "2"},
        ],
    )
    assert patched["data"] == {"a": "1", "b": "2"}
    status, _ = await failure(
        kube.json_patch(f"{CM}/jp", [{"op": "test", "path": "/metadata/resourceVersion", "value": rv}])
    )
    assert status == 422  # kopf relies on this for its optimistic finalizer patches


async def test_strategic_merge_patch(kube: KubeApi) -> None:
    await kube.post(CM, configmap("smp", {"a": "1"}))
    patched = await kube.call("PATCH", f"{CM}/smp", {"data": {"b": "2"}}, content_type=STRATEGIC)
    assert patched["data"] == {"a": "1", "b": "2"}
    await kube.post(AS, authserver("smp"))
    status, _ = await failure(kube.call("PATCH", f"{AS}/smp", {"spec": {}}, content_type=STRATEGIC))
    assert status == 415  # as on a real cluster: no strategic merge for custom resources


async def test_resource_version_preconditions(kube: KubeApi) -> None:
    created = await kube.post(CM, configmap("occ", {"a": "1"}))
    stale = created["metadata"]["resourceVersion"]
    await kube.merge(f"{CM}/occ", {"data": {"a": "2"}})
    status, body = await failure(
        kube.merge(f"{CM}/occ", {"metadata": {"resourceVersion": stale}, "data": {"a": "3"}})
    )
    assert (status, body["reason"]) == (409, "Conflict")
    status, _ = await failure(kube.put(f"{CM}/occ", {**created, "data": {"a": "3"}}))
    assert status == 409
    fresh = await kube.get(f"{CM}/occ")
    replaced = await kube.put(f"{CM}/occ", {**fresh, "data": {"z": "9"}})
    assert replaced["data"] == {"z": "9"}


# --- server-side apply -------------------------------------------------------------------------------


async def test_server_side_apply(kube: KubeApi, emulator: AuthyardEmulator) -> None:
    desired = configmap("ssa", {"a": "1", "b": "2"}, namespace=NS, labels={"app": "auth"})
    url = f"{base_url(emulator)}{CM}/ssa?fieldManager=authyard-operator&force=true"
    headers = {"Content-Type": APPLY}
    async with aiohttp.ClientSession() as http, http.patch(url, json=desired, headers=headers) as rsp:
        assert rsp.status == 201  # created
        created = await rsp.json()
    managers = {(e["manager"], e["operation"]) for e in created["metadata"]["managedFields"]}
    assert managers == {("authyard-operator", "Apply")}

    # Re-applying the same manifest is a no-op.
    again = await kube.apply(f"{CM}/ssa", desired)
    assert again["metadata"]["resourceVersion"] == created["metadata"]["resourceVersion"]

    # Someone else adds an annotation and edits an owned field (drift).
    await kube.call(
        "PATCH",
        f"{CM}/ssa",
        {"metadata": {"annotations": {"kopf.zalando.org/last": "x"}}, "data": {"a": "drifted"}},
        query={"fieldManager": "kubectl-edit"},
        content_type="application/merge-patch+json",
    )
    # Without force, applying over the other manager's change is a conflict.
    status, body = await failure(kube.apply(f"{CM}/ssa", desired, force=False))
    assert status == 409 and ".data.a" in body["message"]

    # A forced apply restores the field, keeps the other manager's annotation, and drops what this
    # manager no longer applies (data.b, the label).
    restored = await kube.apply(f"{CM}/ssa", configmap("ssa", {"a": "1"}, namespace=NS))
    assert restored["data"] == {"a": "1"}
    assert "labels" not in restored["metadata"]
    assert restored["metadata"]["annotations"] == {"kopf.zalando.org/last": "x"}
    owners = {e["manager"]: e for e in restored["metadata"]["managedFields"]}
    assert owners["authyard-operator"]["fieldsV1"] == {"f:data": {"f:a": {}}}
    assert owners["kubectl-edit"]["fieldsV1"] == {
        "f:metadata": {"f:annotations": {"f:kopf.zalando.org/last": {}}}
    }


async def test_reapply_after_a_controller_wrote_status_is_a_no_op(
    kube: KubeApi, emulator: AuthyardEmulator
) -> None:
    manifest = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "noop", "namespace": NS},
        "spec": {"replicas": 2, "template": {"metadata": {"annotations": {"config-hash": "1"}}}},
    }
    await kube.apply(f"{DEPLOY}/noop", manifest)
    ready = emulator.mark_deployment_ready(NS, "noop")
    again = await kube.apply(f"{DEPLOY}/noop", manifest)
    assert again["metadata"]["resourceVersion"] == ready["metadata"]["resourceVersion"]
    assert {(e["manager"], e.get("subresource")) for e in again["metadata"]["managedFields"]} == {
        ("authyard-operator", None),
        ("kube-controller-manager", "status"),
    }
    rolled = await kube.apply(
        f"{DEPLOY}/noop",
        {
            **manifest,
            "spec": {**manifest["spec"], "template": {"metadata": {"annotations": {"config-hash": "2"}}}},
        },
    )
    assert rolled["metadata"]["generation"] == 2 and rolled["status"]["readyReplicas"] == 2


async def test_apply_validation(kube: KubeApi) -> None:
    status, _ = await failure(kube.apply(f"{CM}/bad", {"metadata": {"name": "bad"}}))
    assert status == 400  # apiVersion and kind are required
    status, _ = await failure(
        kube.call("PATCH", f"{CM}/bad", configmap("bad"), content_type=APPLY)  # no fieldManager
    )
    assert status == 422


async def test_apply_to_custom_resource_defaults_and_prunes(kube: KubeApi) -> None:
    applied = await kube.apply(f"{AS}/cr", authserver("cr", {"workers": 2, "unknownField": 1}))
    assert applied["spec"]["workers"] == 2 and applied["spec"]["replicas"] == 1  # defaulted
    assert "unknownField" not in applied["spec"]  # pruned
    status, body = await failure(kube.apply(f"{AS}/cr", authserver("cr", {"workers": 0})))
    assert status == 422 and "spec.workers" in body["message"]


# --- list and watch ----------------------------------------------------------------------------------


async def test_label_and_field_selectors(kube: KubeApi) -> None:
    await kube.post(CM, configmap("a", labels={"app": "auth", "tier": "web"}))
    await kube.post(CM, configmap("b", labels={"app": "auth", "tier": "db"}))
    await kube.post(CM, configmap("c", labels={"app": "other"}))

    async def names(**query: str) -> list[str]:
        return [item["metadata"]["name"] for item in (await kube.get(CM, **query))["items"]]

    assert await names(labelSelector="app=auth") == ["a", "b"]
    assert await names(labelSelector="app=auth,tier!=db") == ["a"]
    assert await names(labelSelector="tier in (db, cache)") == ["b"]
    assert await names(labelSelector="tier notin (db),app") == ["a", "c"]
    assert await names(labelSelector="!tier") == ["c"]
    assert await names(fieldSelector="metadata.name=b") == ["b"]
    listing = await kube.get(CM, limit=2)
    assert [i["metadata"]["name"] for i in listing["items"]] == ["a", "b"]
    rest = await kube.get(CM, limit=2, **{"continue": listing["metadata"]["continue"]})
    assert [i["metadata"]["name"] for i in rest["items"]] == ["c"]


async def collect(stream: Any, count: int, within: float = 5.0) -> list[tuple[str, str]]:
    events: list[tuple[str, str]] = []

    async def consume() -> None:
        async for event in stream:
            events.append((event["type"], event["object"]["metadata"].get("name", "")))
            if len(events) >= count:
                return

    await asyncio.wait_for(consume(), within)
    return events


async def test_watch_true_resumes_from_the_list_resource_version(kube: KubeApi) -> None:
    await kube.post(CM, configmap("before"))
    listing = await kube.get(CM)
    watch = kube.watch(CM, resourceVersion=listing["metadata"]["resourceVersion"])  # sends watch=True
    task = asyncio.ensure_future(collect(watch, 3))
    await kube.post(CM, configmap("after"))
    await kube.merge(f"{CM}/before", {"data": {"x": "1"}})
    await kube.delete(f"{CM}/after")
    # No ADDED for "before" (already listed): exactly what happened since the list.
    assert await task == [("ADDED", "after"), ("MODIFIED", "before"), ("DELETED", "after")]


async def test_watch_without_version_starts_with_current_objects(kube: KubeApi) -> None:
    await kube.post(CM, configmap("existing"))
    task = asyncio.ensure_future(collect(kube.watch(CM), 2))
    await wait_for(lambda: True)
    await kube.post(CM, configmap("new"))
    assert await task == [("ADDED", "existing"), ("ADDED", "new")]


async def test_watch_with_selector_sees_objects_enter_and_leave(
    kube: KubeApi, emulator: AuthyardEmulator
) -> None:
    await kube.post(CM, configmap("sel"))
    rv = (await kube.get(CM))["metadata"]["resourceVersion"]
    task = asyncio.ensure_future(collect(kube.watch(CM, resourceVersion=rv, labelSelector="app=auth"), 3))
    await kube.merge(f"{CM}/sel", {"metadata": {"labels": {"app": "auth"}}})
    await kube.merge(f"{CM}/sel", {"data": {"k": "v"}})
    await kube.merge(f"{CM}/sel", {"metadata": {"labels": {"app": "else"}}})
    assert await task == [("ADDED", "sel"), ("MODIFIED", "sel"), ("DELETED", "sel")]


async def test_watch_timeout_and_compaction(kube: KubeApi, emulator: AuthyardEmulator) -> None:
    events = [e async for e in kube.watch(CM, timeoutSeconds=1)]  # ends by itself
    assert events == []
    await kube.post(CM, configmap("old"))
    rv = (await kube.get(CM))["metadata"]["resourceVersion"]
    emulator.compact()
    gone = [e async for e in kube.watch(CM, resourceVersion=str(int(rv) - 1))]
    assert gone[0]["type"] == "ERROR" and gone[0]["object"]["code"] == 410


async def test_watch_initial_events_bookmark(kube: KubeApi) -> None:
    await kube.post(CM, configmap("init"))
    stream = kube.watch(CM, sendInitialEvents="true", resourceVersionMatch="NotOlderThan")
    events = []
    async for event in stream:
        events.append(event)
        if event["type"] == "BOOKMARK":
            break
    assert [e["type"] for e in events] == ["ADDED", "BOOKMARK"]
    assert events[-1]["object"]["metadata"]["annotations"] == {"k8s.io/initial-events-end": "true"}


# --- deletion ------------------------------------------------------------------------------------


async def test_delete_honours_finalizers(kube: KubeApi, emulator: AuthyardEmulator) -> None:
    await kube.post(
        AS, {**authserver("fin"), "metadata": {"name": "fin", "finalizers": ["authyard.dev/cleanup"]}}
    )
    deleting = await kube.delete(f"{AS}/fin")
    assert deleting["metadata"]["deletionTimestamp"] and deleting["metadata"]["generation"] == 2
    assert (await kube.get(f"{AS}/fin"))["metadata"]["deletionTimestamp"]
    status, _ = await failure(
        kube.merge(f"{AS}/fin", {"metadata": {"finalizers": ["authyard.dev/cleanup", "x/y"]}})
    )
    assert status == 422  # no new finalizers during deletion
    await kube.merge(f"{AS}/fin", {"metadata": {"finalizers": None}})
    status, _ = await failure(kube.get(f"{AS}/fin"))
    assert status == 404
    assert emulator.get(AUTHSERVERS, NS, "fin") is None


async def test_garbage_collection_through_owner_references(kube: KubeApi, emulator: AuthyardEmulator) -> None:
    owner = await kube.post(AS, authserver("owner"))
    other = await kube.post(AS, authserver("other"))
    await kube.post(CM, configmap("child", ownerReferences=[owner_ref(owner)]))
    await kube.post(
        CM, configmap("shared", ownerReferences=[owner_ref(owner), owner_ref(other, controller=False)])
    )
    await kube.post(CM, configmap("grandchild", ownerReferences=[owner_ref(await kube.get(f"{CM}/child"))]))
    await kube.post(CM, configmap("unrelated"))

    await kube.delete(f"{AS}/owner")
    names = [cm["metadata"]["name"] for cm in emulator.list("v1/configmaps", NS)]
    assert names == ["shared", "unrelated"]  # child and (recursively) grandchild collected
    shared = emulator.get("v1/configmaps", NS, "shared")
    assert shared is not None
    assert [ref["name"] for ref in shared["metadata"]["ownerReferences"]] == [
        "other"
    ]  # only the dangling ref goes


async def test_garbage_collection_of_dangling_and_cross_namespace_owners(
    kube: KubeApi, emulator: AuthyardEmulator
) -> None:
    emulator.create_namespace("elsewhere")
    owner = await kube.post(AS, authserver("x-owner"))
    gone = await kube.post(
        CM, configmap("dangling", ownerReferences=[{**owner_ref(owner), "uid": "no-such-uid"}])
    )
    assert gone["metadata"]["name"] == "dangling"
    assert emulator.get("v1/configmaps", NS, "dangling") is None  # collected right after creation

    path = "/api/v1/namespaces/elsewhere/configmaps"
    await kube.post(path, configmap("cross", ownerReferences=[owner_ref(owner)]))
    assert emulator.get("v1/configmaps", "elsewhere", "cross") is None  # owners must share the namespace
    assert [e["reason"] for e in emulator.events("elsewhere", name="cross")] == ["OwnerRefInvalidNamespace"]


async def test_orphan_and_foreground_propagation(kube: KubeApi, emulator: AuthyardEmulator) -> None:
    owner = await kube.post(AS, authserver("orph"))
    await kube.post(CM, configmap("kept", ownerReferences=[owner_ref(owner)]))
    await kube.delete(f"{AS}/orph", propagationPolicy="Orphan")
    kept = emulator.get("v1/configmaps", NS, "kept")
    assert kept is not None and "ownerReferences" not in kept["metadata"]

    owner = await kube.post(AS, authserver("fg"))
    await kube.post(CM, configmap("fgchild", ownerReferences=[owner_ref(owner)]))
    await kube.delete(f"{AS}/fg", {"propagationPolicy": "Foreground"})
    assert emulator.get("v1/configmaps", NS, "fgchild") is None


async def test_namespace_deletion(kube: KubeApi, emulator: AuthyardEmulator) -> None:
    emulator.create_namespace("doomed")
    await kube.post("/api/v1/namespaces/doomed/configmaps", configmap("plain"))
    held = {**configmap("held"), "metadata": {"name": "held", "finalizers": ["x.dev/hold"]}}
    await kube.post("/api/v1/namespaces/doomed/configmaps", held)
    namespaces = [ns["metadata"]["name"] for ns in (await kube.get("/api/v1/namespaces"))["items"]]
    assert "doomed" in namespaces

    terminating = await kube.delete("/api/v1/namespaces/doomed")
    assert terminating["status"]["phase"] == "Terminating"
    assert emulator.get("v1/configmaps", "doomed", "plain") is None
    status, body = await failure(kube.post("/api/v1/namespaces/doomed/configmaps", configmap("late")))
    assert status == 403 and "being terminated" in body["message"]

    await kube.merge("/api/v1/namespaces/doomed/configmaps/held", {"metadata": {"finalizers": []}})
    assert emulator.get("v1/namespaces", None, "doomed") is None  # gone once empty


# --- faults and helpers --------------------------------------------------------------------------------


async def test_fail_next(kube: KubeApi, emulator: AuthyardEmulator) -> None:
    await kube.post(CM, configmap("f", {"a": "1"}))
    fault = emulator.fail_next("PATCH", r"/configmaps/f$", 409, times=2)
    for _ in range(2):
        status, body = await failure(kube.merge(f"{CM}/f", {"data": {"a": "2"}}))
        assert (status, body["kind"], body["reason"]) == (409, "Status", "Conflict")
    assert fault.hits == 2 and emulator.get("v1/configmaps", NS, "f")["data"] == {"a": "1"}  # type: ignore[index]
    assert (await kube.merge(f"{CM}/f", {"data": {"a": "2"}}))["data"] == {"a": "2"}

    emulator.fail_next(None, r"/configmaps", 429)
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{base_url(emulator)}{CM}") as rsp,
    ):
        assert rsp.status == 429 and rsp.headers["Retry-After"] == "1"
        assert (await rsp.json())["reason"] == "TooManyRequests"
    emulator.fail_next("get", r"/configmaps", 500, times=None)
    assert await kube.status_of(kube.get(CM)) == 500
    assert await kube.status_of(kube.get(CM)) == 500
    emulator.clear_faults()
    assert await kube.status_of(kube.get(CM)) == 200


async def test_fail_next_lost_response(kube: KubeApi, emulator: AuthyardEmulator) -> None:
    """The write is committed, only its answer is lost: a retried create finds the object there."""
    emulator.fail_next("POST", r"/configmaps$", 500, lost_response=True)
    status, body = await failure(kube.post(CM, configmap("lost", {"a": "1"})))
    assert (status, body["reason"]) == (500, "InternalError")
    assert emulator.get("v1/configmaps", NS, "lost")["data"] == {"a": "1"}  # type: ignore[index]
    assert await kube.status_of(kube.post(CM, configmap("lost", {"a": "1"}))) == 409
    emulator.fail_next("PATCH", r"/configmaps/lost$", 504, lost_response=True)
    assert await kube.status_of(kube.merge(f"{CM}/lost", {"data": {"a": "2"}})) == 504
    assert emulator.get("v1/configmaps", NS, "lost")["data"] == {"a": "2"}  # type: ignore[index]


async def test_a_tests_own_reactions_come_before_the_emulators(
    kube: KubeApi, emulator: AuthyardEmulator
) -> None:
    """The emulator picks the reaction for a request without filtering the whole request log (what made it
    slow at thousands of objects); a test's own reaction still wins for the requests it matches, and the
    others reach the emulated API."""
    await kube.post(CM, configmap("mine", {"a": "1"}))
    await kube.post(CM, configmap("other", {"a": "1"}))
    emulator["get", f"{CM}/mine"] << 418
    assert await kube.status_of(kube.get(f"{CM}/mine")) == 418
    assert await kube.status_of(kube.get(f"{CM}/mine")) == 418
    assert (await kube.get(f"{CM}/other"))["data"] == {"a": "1"}
    assert (await kube.merge(f"{CM}/mine", {"data": {"a": "2"}}))["data"] == {"a": "2"}


async def raw_exchange(emulator: AuthyardEmulator, request: bytes) -> bytes:
    """Send one raw HTTP request and read until the server closes the connection: what went over the wire."""
    url = emulator.url
    reader, writer = await asyncio.open_connection(url.host, url.port)
    try:
        writer.write(request)
        await writer.drain()
        return await asyncio.wait_for(reader.read(), timeout=10)  # to EOF
    finally:
        writer.close()


@pytest.mark.parametrize("at", ["request", "headers", "body"])
async def test_drop_next_closes_the_socket_mid_response_after_the_write(
    kube: KubeApi, emulator: AuthyardEmulator, at: str
) -> None:
    """The write is committed; then the connection closes before the answer, after its headers, or after
    half its body -- as the bytes on the wire show."""
    drop = emulator.drop_next("POST", r"/configmaps$", at=at)
    body = json.dumps(configmap("dropped", {"a": "1"})).encode()
    request = (
        f"POST {CM} HTTP/1.1\r\nHost: emulator\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    received = await raw_exchange(emulator, request)
    assert drop.hits == 1
    assert emulator.get("v1/configmaps", NS, "dropped")["data"] == {"a": "1"}  # type: ignore[index]
    if at == "request":
        assert received == b""
    else:
        head, _, partial = received.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 201")
        length = int(next(line for line in head.split(b"\r\n") if line.lower().startswith(b"content-length"))
                     .split(b":")[1])  # fmt: skip
        if at == "headers":
            assert partial == b"" and length > 0
        else:
            assert 0 < len(partial) < length and b'"dropped"' in partial

    # Exhausted: the next request is answered in full (the object exists now: 409).
    assert await kube.status_of(kube.post(CM, configmap("dropped", {"a": "1"}))) == 409


async def test_drop_next_through_an_http_client_and_never_on_watches(
    kube: KubeApi, emulator: AuthyardEmulator
) -> None:
    drop = emulator.drop_next("GET", r"/configmaps", times=None)
    watch = asyncio.ensure_future(collect(kube.watch(CM), 1))
    with pytest.raises(httpx.RemoteProtocolError):
        await kube.get(CM)
    emulator.create("v1/configmaps", configmap("seen", namespace=NS))
    assert await asyncio.wait_for(watch, timeout=10) == [("ADDED", "seen")]
    assert drop.hits == 1
    emulator.clear_faults()
    assert await kube.status_of(kube.get(CM)) == 200


async def test_mark_deployment_ready(kube: KubeApi, emulator: AuthyardEmulator) -> None:
    created = await kube.apply(
        f"{DEPLOY}/web",
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web", "namespace": NS},
            "spec": {"replicas": 3},
        },
    )
    emulator.mark_deployment_ready(NS, "web", ready=1)
    partial = await kube.get(f"{DEPLOY}/web")
    assert partial["status"]["readyReplicas"] == 1 and partial["status"]["replicas"] == 3
    ready = emulator.mark_deployment_ready(NS, "web")
    assert ready["status"]["readyReplicas"] == 3 and ready["status"]["availableReplicas"] == 3
    assert (
        ready["status"]["observedGeneration"]
        == ready["metadata"]["generation"]
        == created["metadata"]["generation"]
    )
    assert {c["type"]: c["status"] for c in ready["status"]["conditions"]} == {
        "Available": "True",
        "Progressing": "True",
    }
    assert emulator.get(DEPLOYMENTS, NS, "web")["spec"] == {"replicas": 3}  # type: ignore[index]


async def test_crds_are_objects_and_define_resources(kube: KubeApi, emulator: AuthyardEmulator) -> None:
    crds = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
    assert (await kube.get(f"{crds}/authservers.authyard.dev"))["status"]["conditions"][1][
        "type"
    ] == "Established"
    assert await kube.status_of(kube.get(f"{crds}/servicemonitors.monitoring.coreos.com")) == 404
    sm_path = f"/apis/monitoring.coreos.com/v1/namespaces/{NS}/servicemonitors"
    assert await kube.status_of(kube.get(sm_path)) == 404

    await kube.post(crds, service_monitor_crd())
    discovery = await kube.get("/apis/monitoring.coreos.com/v1")
    assert [r["name"] for r in discovery["resources"]] == ["servicemonitors"]
    sm = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "ServiceMonitor",
        "metadata": {"name": "auth"},
        "spec": {"x": 1},
    }
    assert (await kube.apply(f"{sm_path}/auth", sm))["spec"] == {"x": 1}
    await kube.delete(f"{crds}/servicemonitors.monitoring.coreos.com")
    assert await kube.status_of(kube.get(sm_path)) == 404


async def test_secrets_string_data_and_leases_put(kube: KubeApi) -> None:
    secrets = f"/api/v1/namespaces/{NS}/secrets"
    secret = await kube.post(secrets, {"metadata": {"name": "s"}, "stringData": {"token": "t0p"}})
    assert secret["data"] == {"token": base64.b64encode(b"t0p").decode()} and "stringData" not in secret
    assert secret["type"] == "Opaque"
    assert (
        await kube.status_of(kube.post(secrets, {"metadata": {"name": "bad"}, "data": {"k": "not base64!"}}))
        == 400
    )

    leases = f"/apis/coordination.k8s.io/v1/namespaces/{NS}/leases"
    lease = await kube.post(leases, {"metadata": {"name": "leader"}, "spec": {"holderIdentity": "a"}})
    taken = await kube.put(f"{leases}/leader", {**lease, "spec": {"holderIdentity": "b"}})
    assert taken["spec"]["holderIdentity"] == "b"
    assert (
        await kube.status_of(kube.put(f"{leases}/leader", {**lease, "spec": {"holderIdentity": "c"}})) == 409
    )


async def test_helpers_share_the_api_code_and_wake_watchers(
    kube: KubeApi, emulator: AuthyardEmulator
) -> None:
    rv = (await kube.get(CM))["metadata"]["resourceVersion"]
    task = asyncio.ensure_future(collect(kube.watch(CM, resourceVersion=rv), 2))
    emulator.create("v1/configmaps", configmap("h", namespace=NS))
    emulator.patch("v1/configmaps", NS, "h", {"data": {"k": "v"}})
    assert await task == [("ADDED", "h"), ("MODIFIED", "h")]
    assert emulator.objects[emulator.resource("v1/configmaps"), NS, "h"] >= {"data": {"k": "v"}}


# --- a throwaway kopf operator through the harness --------------------------------------------------

OPERATOR = textwrap.dedent(
    """
    import kopf

    @kopf.on.startup()
    def configure(settings: kopf.OperatorSettings, **_):
        settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix="smoke.authyard.dev")
        settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(prefix="smoke.authyard.dev")
        settings.posting.level = 0

    @kopf.on.create("authyard.dev", "v1alpha1", "authservers")
    @kopf.on.update("authyard.dev", "v1alpha1", "authservers")
    async def reconcile(body, spec, meta, patch, logger, **_):
        import httpx, json
        from authyard_operator.kube import config
        cluster = config.load()
        manifest = {
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {
                "name": f"{meta['name']}-config", "namespace": meta["namespace"],
                "ownerReferences": [{
                    "apiVersion": body["apiVersion"], "kind": body["kind"], "name": meta["name"],
                    "uid": meta["uid"], "controller": True, "blockOwnerDeletion": True,
                }],
            },
            "data": {"workers": str(spec["workers"])},
        }
        async with httpx.AsyncClient(base_url=cluster.server) as api:
            response = await api.patch(
                f"/api/v1/namespaces/{meta['namespace']}/configmaps/{meta['name']}-config",
                params={"fieldManager": "smoke-operator", "force": "true"},
                headers={"Content-Type": "application/apply-patch+yaml",
                         "Authorization": f"Bearer {cluster.token}"},
                content=json.dumps(manifest),
            )
            response.raise_for_status()
        patch.status["observedGeneration"] = meta["generation"]
        patch.status["replicas"] = spec["workers"]
        kopf.info(body, reason="Reconciled", message="configmap applied")
    """
)


async def test_kopf_operator_smoke(
    tmp_path: Path, emulator: AuthyardEmulator, kubeconfig: Path, kube: KubeApi
) -> None:
    handlers = tmp_path / "smoke_operator.py"
    handlers.write_text(OPERATOR)
    await kube.post(AS, authserver("early"))  # exists before the operator starts

    def watching() -> bool:
        return emulator.active_watches(AUTHSERVERS) > 0

    async with run_operator(handlers, ready=watching, timeout=20) as run:
        early = await wait_for(
            lambda: emulator.get("v1/configmaps", NS, "early-config"), message=lambda: run.output
        )
        assert early["metadata"]["ownerReferences"][0]["name"] == "early"

        await kube.post(AS, authserver("smoke", {"workers": 2}))
        config = await wait_for(lambda: emulator.get("v1/configmaps", NS, "smoke-config"))
        assert config["data"] == {"workers": "2"}
        assert [m["manager"] for m in config["metadata"]["managedFields"]] == ["smoke-operator"]
        cr = await wait_for(
            lambda: (obj := emulator.get(AUTHSERVERS, NS, "smoke")) and "status" in obj and obj
        )
        assert cr["metadata"]["generation"] == 1 and cr["status"]["observedGeneration"] == 1

        await kube.merge(f"{AS}/smoke", {"spec": {"workers": 3}})
        await wait_for(lambda: emulator.get("v1/configmaps", NS, "smoke-config")["data"] == {"workers": "3"})  # type: ignore[index]
        cr = await wait_for(
            lambda: (
                (obj := emulator.get(AUTHSERVERS, NS, "smoke"))
                and obj["status"].get("observedGeneration") == 2
                and obj
            )
        )
        assert cr["metadata"]["generation"] == 2 and cr["status"]["replicas"] == 3
        await wait_for(lambda: emulator.events(NS, name="smoke", reason="Reconciled"))

        # A restart re-runs nothing for objects already handled: no new writes to their ConfigMaps.
        versions = len(emulator.objects[emulator.resource("v1/configmaps"), NS, "smoke-config"].history)
        await run.restart(ready=watching)
        assert run.starts == 2
        await kube.post(AS, authserver("after-restart"))
        await wait_for(lambda: emulator.get("v1/configmaps", NS, "after-restart-config"))
        assert (
            len(emulator.objects[emulator.resource("v1/configmaps"), NS, "smoke-config"].history) == versions
        )

        # Deleting the CR cascades to its ConfigMap (the garbage collector's job).
        await kube.delete(f"{AS}/smoke")
        await wait_for(lambda: emulator.get(AUTHSERVERS, NS, "smoke") is None)
        assert emulator.get("v1/configmaps", NS, "smoke-config") is None
    assert not run.running


async def test_operator_fixture_stops_runs(operator: Any, tmp_path: Path, emulator: AuthyardEmulator) -> None:
    handlers = tmp_path / "noop_operator.py"
    handlers.write_text(
        "import kopf\n\n@kopf.on.create('authyard.dev', 'v1alpha1', 'authservers')\ndef noop(**_): pass\n"
    )
    run: OperatorRun = await operator(handlers)
    assert run.running and emulator.active_watches(AUTHSERVERS) > 0


async def test_overlapping_runs_restore_streams_and_environment(
    operator: Any, tmp_path: Path, emulator: AuthyardEmulator
) -> None:
    handlers = tmp_path / "noop2_operator.py"
    handlers.write_text(
        "import kopf\n\n@kopf.on.create('authyard.dev', 'v1alpha1', 'authservers')\ndef noop(**_): pass\n"
    )
    stdout, stderr = sys.stdout, sys.stderr
    first: OperatorRun = await operator(handlers, env={"REPLICA": "a"})
    # Readiness must be specific to the run: the first replica's watches are already open.
    second: OperatorRun = await operator(
        handlers, env={"REPLICA": "b"}, ready=lambda: emulator.active_watches(AUTHSERVERS) >= 2
    )
    await first.stop()
    await second.stop()
    assert (sys.stdout, sys.stderr) == (stdout, stderr)
    # The handler files' registries are gone with their runs: later operators run the real handlers.
    assert kopf.get_default_registry() is kopf_harness.PROCESS_REGISTRY
    assert "REPLICA" not in __import__("os").environ


async def test_operator_in_a_child_process(
    operator_process: Any, tmp_path: Path, emulator: AuthyardEmulator, kube: KubeApi
) -> None:
    handlers = tmp_path / "process_operator.py"
    handlers.write_text(OPERATOR)
    process: OperatorProcess = await operator_process(kopf_command(handlers))
    await kube.post(AS, authserver("proc"))
    await wait_for(lambda: emulator.get("v1/configmaps", NS, "proc-config"), message=lambda: process.output)
    versions = len(emulator.objects[emulator.resource("v1/configmaps"), NS, "proc-config"].history)

    assert await process.kill() == -9  # no graceful shutdown
    await process.start(ready=lambda: emulator.active_watches(AUTHSERVERS) > 0)
    await kube.post(AS, authserver("proc2"))
    await wait_for(lambda: emulator.get("v1/configmaps", NS, "proc2-config"), message=lambda: process.output)
    assert len(emulator.objects[emulator.resource("v1/configmaps"), NS, "proc-config"].history) == versions
    assert await process.stop() == 0


async def test_schema_validation_ratchets_unchanged_invalid_values(
    kube: KubeApi, emulator: AuthyardEmulator
) -> None:
    """An object created under a laxer (older) CRD can still get its status and unrelated edits written;
    a write that introduces an invalid value is refused."""
    path = f"/apis/authyard.dev/v1alpha1/namespaces/{NS}/authservers"
    body = {"apiVersion": "authyard.dev/v1alpha1", "kind": "AuthServer", "metadata": {"name": "old"}}
    emulator.validate_custom_resources = False
    await kube.post(path, {**body, "spec": {"replicas": "three"}})
    emulator.validate_custom_resources = True
    await kube.merge(f"{path}/old/status", {"status": {"observedGeneration": 1}})
    await kube.merge(f"{path}/old", {"spec": {"workers": 2}})
    assert emulator.get(AUTHSERVERS, NS, "old")["spec"]["workers"] == 2  # type: ignore[index]
    status, error = await failure(kube.merge(f"{path}/old", {"spec": {"workers": 99}}))
    assert status == 422 and "spec.workers" in error["message"] and "spec.replicas" not in error["message"]
    assert (
        await kube.status_of(
            kube.post(path, {**body, "metadata": {"name": "new"}, "spec": {"replicas": "x"}})
        )
        == 422
    )


async def test_service_account_issuer_discovery(kube: KubeApi, emulator: AuthyardEmulator) -> None:
    """As kube-apiserver serves it (KEP-1393): the discovery document names the issuer and the JWKS."""
    document = await kube.get("/.well-known/openid-configuration")
    assert document["issuer"] == "https://kubernetes.default.svc.cluster.local"
    assert document["jwks_uri"] == f"{str(emulator.url).rstrip('/')}/openid/v1/jwks"
    assert document["id_token_signing_alg_values_supported"] == ["RS256"]
    emulator.service_account_jwks = {"keys": [{"kty": "RSA", "kid": "k", "n": "AQAB", "e": "AQAB"}]}
    assert (await kube.get("/openid/v1/jwks"))["keys"][0]["kid"] == "k"

    emulator.service_account_issuer = "https://oidc.example.com/cluster"
    assert (await kube.get("/.well-known/openid-configuration"))[
        "issuer"
    ] == "https://oidc.example.com/cluster"
    emulator.fail_next("GET", "/.well-known/openid-configuration", 503)
    assert await kube.status_of(kube.get("/.well-known/openid-configuration")) == 503
    assert await kube.status_of(kube.get("/.well-known/openid-configuration")) == 200  # one fault only
    emulator.service_account_issuer = None  # discovery that cannot be read
    assert await kube.status_of(kube.get("/.well-known/openid-configuration")) == 404
    assert await kube.status_of(kube.get("/openid/v1/jwks")) == 404
