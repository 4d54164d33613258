"""OAuthClients end to end: the real operator against the emulated API, registering with a real
`authserver serve` process on real PostgreSQL; the credentials it hands out are used for real tokens."""

from __future__ import annotations

import base64
import time

import httpx
import jwt
import pytest
from authyard_operator import metrics

from harness.kube import AUTHSERVERS, OAUTHCLIENTS
from harness.operator import PLATFORM, TEAM
from harness.polling import wait_for
from tests.operator.stack import Stack, oauthclient, token

pytestmark = pytest.mark.postgres


async def test_credentials_from_the_secret_get_verifiable_tokens(stack: Stack) -> None:
    await stack.kube.post(
        f"/apis/authyard.dev/v1alpha1/namespaces/{TEAM}/oauthclients", oauthclient("orders")
    )
    await wait_for(
        lambda: stack.ready("orders").get("status") == "True", timeout=30, message="client not Ready"
    )
    status = stack.client_status("orders")
    assert status["clientId"] == "team-a.orders" and status["secretName"] == "orders-oauth"
    assert status["authServer"] == f"{PLATFORM}/auth" and status["observedGeneration"] == 1
    credentials = stack.secret("orders-oauth")
    assert credentials["issuer"] == stack.server.issuer and credentials["OAUTH_CLIENT_ID"] == "team-a.orders"
    assert credentials["client_secret"] == credentials["OAUTH_CLIENT_SECRET"]
    owner = stack.emulator.get("v1/secrets", TEAM, "orders-oauth")["metadata"]["ownerReferences"][0]
    assert owner["kind"] == "OAuthClient" and owner["name"] == "orders"

    response = await token(credentials)
    assert response.status_code == 200, response.text
    keys = jwt.PyJWKClient(credentials["jwks_uri"])
    access = response.json()["access_token"]
    claims = jwt.decode(
        access,
        keys.get_signing_key_from_jwt(access).key,
        algorithms=["ES256"],
        audience="https://orders.example.com",
        issuer=credentials["issuer"],
    )
    assert claims["client_id"] == "team-a.orders" and claims["scope"] == "orders.read"

    # A spec change updates the registration in place: the next token carries the new scopes.
    await stack.kube.merge(
        f"/apis/authyard.dev/v1alpha1/namespaces/{TEAM}/oauthclients/orders",
        {"spec": {"scopes": ["orders.read", "orders.write"]}},
    )
    await wait_for(lambda: stack.client_status("orders").get("observedGeneration") == 2, timeout=20)
    response = await token(stack.secret("orders-oauth"))
    assert response.json()["scope"] == "orders.read orders.write"
    assert stack.secret("orders-oauth")["client_secret"] == credentials["client_secret"], "secret changed"


async def test_client_secret_rotation_keeps_the_old_secret_for_the_grace_period(stack: Stack) -> None:
    grace_seconds = 4
    client = oauthclient(
        "billing", secret={"name": "billing-oauth", "rotationGracePeriod": f"{grace_seconds}s"}
    )
    await stack.kube.post(f"/apis/authyard.dev/v1alpha1/namespaces/{TEAM}/oauthclients", client)
    await wait_for(lambda: stack.ready("billing").get("status") == "True", timeout=30)
    old = stack.secret("billing-oauth")

    await stack.kube.merge(
        f"/apis/authyard.dev/v1alpha1/namespaces/{TEAM}/oauthclients/billing",
        {"metadata": {"annotations": {"authyard.dev/rotate-secret": "first"}}},
    )
    new = await wait_for(
        lambda: (s := stack.secret("billing-oauth"))["client_secret"] != old["client_secret"] and s,
        timeout=20,
        message="secret not rotated",
    )
    rotated_at = time.monotonic()
    assert "next_client_secret" not in new
    assert (await token(new)).status_code == 200
    assert (await token(old)).status_code == 200, "the previous secret must work during the grace period"
    await wait_for(lambda: stack.client_status("billing").get("lastRotation"), timeout=10)

    async def old_refused() -> bool:
        return (await token(old)).status_code == 401

    await wait_for(
        old_refused, timeout=grace_seconds + 10, interval=0.5, message="old secret outlived its grace"
    )
    assert time.monotonic() - rotated_at >= grace_seconds - 1
    assert (await token(new)).status_code == 200
    events = stack.emulator.events(TEAM, name="billing")
    assert any(e.get("reason") == "SecretRotated" for e in events)
    assert all(old["client_secret"] not in str(e) and new["client_secret"] not in str(e) for e in events)
    assert new["client_secret"] not in str(stack.client_status("billing"))


async def test_operator_restart_mid_way_creates_no_duplicate_and_no_new_secret(stack: Stack) -> None:
    names = [f"svc-{index}" for index in range(6)]
    for name in names:
        await stack.kube.post(
            f"/apis/authyard.dev/v1alpha1/namespaces/{TEAM}/oauthclients", oauthclient(name)
        )
    await stack.operator.restart()  # while they are being registered
    for name in names:
        await wait_for(lambda n=name: stack.ready(n).get("status") == "True", timeout=40, message=f"{name}")
    secrets = {name: stack.secret(f"{name}-oauth")["client_secret"] for name in names}

    before = metrics.RECONCILES.labels("OAuthClient", "success")._value.get()
    await stack.operator.restart()
    await wait_for(
        lambda: metrics.RECONCILES.labels("OAuthClient", "success")._value.get() >= before + 2 * len(names),
        timeout=30,
        message="clients not reconciled after the restart",
    )
    listed = (await stack.admin("GET", "/admin/clients?limit=1000")).json()
    ids = [client["client_id"] for client in listed]
    for name in names:
        assert ids.count(f"{TEAM}.{name}") == 1
        assert stack.secret(f"{name}-oauth")["client_secret"] == secrets[name], f"{name} got a new secret"
        assert (await token(stack.secret(f"{name}-oauth"))).status_code == 200


async def test_require_existing_waits_and_policy_refuses(stack: Stack) -> None:
    external = oauthclient("external", secret={"name": "external-creds", "policy": "RequireExisting"})
    await stack.kube.post(f"/apis/authyard.dev/v1alpha1/namespaces/{TEAM}/oauthclients", external)
    waiting = await wait_for(lambda: stack.ready("external") or None, timeout=20)
    assert waiting["status"] == "False" and waiting["reason"] == "SecretNotFound"
    assert stack.emulator.get("v1/secrets", TEAM, "external-creds") is None, (
        "credentials must never be invented"
    )

    supplied = "x" * 20 + "supplied-by-external-secrets"
    await stack.kube.post(
        f"/api/v1/namespaces/{TEAM}/secrets",
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "external-creds", "namespace": TEAM},
            "data": {"client_secret": base64.b64encode(supplied.encode()).decode()},
        },
    )
    await wait_for(lambda: stack.ready("external").get("status") == "True", timeout=30)
    credentials = stack.secret("external-creds")
    assert credentials["client_secret"] == supplied and credentials["client_id"] == "team-a.external"
    assert (await token(credentials)).status_code == 200

    await stack.kube.post(
        "/apis/authyard.dev/v1alpha1/namespaces/team-b/oauthclients",
        oauthclient("intruder", namespace="team-b"),
    )
    refused = await wait_for(lambda: stack.ready("intruder", "team-b") or None, timeout=20)
    assert refused["status"] == "False" and refused["reason"] == "NotAllowed"
    assert "allowedNamespaces" in refused["message"]
    assert (await stack.admin("GET", "/admin/clients/team-b.intruder")).status_code == 404


async def test_delete_unregisters_and_never_hangs_when_the_authserver_is_gone(stack: Stack) -> None:
    for name in ("gone-1", "gone-2"):
        await stack.kube.post(
            f"/apis/authyard.dev/v1alpha1/namespaces/{TEAM}/oauthclients", oauthclient(name)
        )
        await wait_for(lambda n=name: stack.ready(n).get("status") == "True", timeout=30)
    credentials = stack.secret("gone-1-oauth")

    await stack.kube.delete(f"/apis/authyard.dev/v1alpha1/namespaces/{TEAM}/oauthclients/gone-1")
    await wait_for(lambda: stack.emulator.get(OAUTHCLIENTS, TEAM, "gone-1") is None, timeout=20)
    assert (await stack.admin("GET", "/admin/clients/team-a.gone-1")).status_code == 404
    assert stack.emulator.get("v1/secrets", TEAM, "gone-1-oauth") is None
    assert (await token(credentials)).status_code == 401

    await stack.kube.delete(f"/apis/authyard.dev/v1alpha1/namespaces/{PLATFORM}/authservers/auth")
    await wait_for(lambda: stack.emulator.get(AUTHSERVERS, PLATFORM, "auth") is None, timeout=20)
    await stack.kube.delete(f"/apis/authyard.dev/v1alpha1/namespaces/{TEAM}/oauthclients/gone-2")
    await wait_for(
        lambda: stack.emulator.get(OAUTHCLIENTS, TEAM, "gone-2") is None,
        timeout=20,
        message="the finalizer hung although the AuthServer is gone",
    )


async def test_id_token_signing_alg_reaches_the_registration(stack: Stack) -> None:
    """OAuthClient idTokenSigningAlg → id_token_signed_response_alg (OIDC Dynamic Client Registration §2)."""
    await stack.kube.post(
        f"/apis/authyard.dev/v1alpha1/namespaces/{TEAM}/oauthclients",
        oauthclient("signer", idTokenSigningAlg="ES256"),
    )
    await wait_for(
        lambda: stack.ready("signer").get("status") == "True", timeout=30, message="client not Ready"
    )
    registered = (await stack.admin("GET", "/admin/clients/team-a.signer")).json()
    assert registered["id_token_signed_response_alg"] == "ES256"
    # Removing the field goes back to the server's default.
    await stack.kube.merge(
        f"/apis/authyard.dev/v1alpha1/namespaces/{TEAM}/oauthclients/signer",
        {"spec": {"idTokenSigningAlg": None}},
    )
    await wait_for(lambda: stack.client_status("signer").get("observedGeneration") == 2, timeout=20)
    registered = (await stack.admin("GET", "/admin/clients/team-a.signer")).json()
    assert registered["id_token_signed_response_alg"] is None


async def test_a_clients_rate_limit_reaches_the_registration_and_leaves_it(stack: Stack) -> None:
    """OAuthClient rateLimit → the registration's rate_limit (this client's budget for the whole server);
    removing it goes back to the AuthServer's spec.rateLimits.perClient."""
    await stack.kube.post(
        f"/apis/authyard.dev/v1alpha1/namespaces/{TEAM}/oauthclients",
        oauthclient("batch", rateLimit={"requestsPerSecond": 2.5, "burst": 5}),
    )
    await wait_for(
        lambda: stack.ready("batch").get("status") == "True", timeout=30, message="client not Ready"
    )
    registered = (await stack.admin("GET", "/admin/clients/team-a.batch")).json()
    assert registered["rate_limit"] == {"requests_per_second": 2.5, "burst": 5}
    await stack.kube.merge(
        f"/apis/authyard.dev/v1alpha1/namespaces/{TEAM}/oauthclients/batch", {"spec": {"rateLimit": None}}
    )
    await wait_for(lambda: stack.client_status("batch").get("observedGeneration") == 2, timeout=20)
    registered = (await stack.admin("GET", "/admin/clients/team-a.batch")).json()
    assert registered["rate_limit"] is None


async def test_backchannel_logout_reaches_the_registration_and_leaves_it(stack: Stack) -> None:
    """OAuthClient backchannelLogout → backchannel_logout_uri / _session_required (Back-Channel Logout
    §2.2); removing it removes the URI, so the client is sent no more logout tokens."""
    logout = {"uri": "https://orders.example.com/bc-logout?tenant=a", "sessionRequired": True}
    await stack.kube.post(
        f"/apis/authyard.dev/v1alpha1/namespaces/{TEAM}/oauthclients",
        oauthclient("logout", backchannelLogout=logout),
    )
    await wait_for(
        lambda: stack.ready("logout").get("status") == "True", timeout=30, message="client not Ready"
    )
    registered = (await stack.admin("GET", "/admin/clients/team-a.logout")).json()
    assert registered["backchannel_logout_uri"] == "https://orders.example.com/bc-logout?tenant=a"
    assert registered["backchannel_logout_session_required"] is True
    await stack.kube.merge(
        f"/apis/authyard.dev/v1alpha1/namespaces/{TEAM}/oauthclients/logout",
        {"spec": {"backchannelLogout": None}},
    )
    await wait_for(lambda: stack.client_status("logout").get("observedGeneration") == 2, timeout=20)
    registered = (await stack.admin("GET", "/admin/clients/team-a.logout")).json()
    assert registered["backchannel_logout_uri"] is None
    assert registered["backchannel_logout_session_required"] is False


async def test_the_authservers_trusted_clients_register_with_skip_consent(stack: Stack) -> None:
    """spec.consent.trustedClients decides; taking a client off the list un-trusts it at its next resync."""
    authserver = f"/apis/authyard.dev/v1alpha1/namespaces/{PLATFORM}/authservers/auth"
    await stack.kube.merge(
        authserver, {"spec": {"consent": {"trustedClients": [{"namespace": TEAM, "name": "portal"}]}}}
    )
    for name in ("portal", "reports"):
        await stack.kube.post(
            f"/apis/authyard.dev/v1alpha1/namespaces/{TEAM}/oauthclients", oauthclient(name)
        )
        await wait_for(
            lambda n=name: stack.ready(n).get("status") == "True", timeout=30, message=f"{name} not Ready"
        )

    async def skips_consent(name: str) -> bool:
        registered = await stack.admin("GET", f"/admin/clients/{TEAM}.{name}")
        assert registered.status_code == 200, registered.text
        return bool(registered.json()["skip_consent"])

    assert await skips_consent("portal") and stack.client_status("portal")["trusted"] is True
    assert not await skips_consent("reports") and stack.client_status("reports")["trusted"] is False

    await stack.kube.merge(authserver, {"spec": {"consent": {"trustedClients": []}}})
    await wait_for(
        lambda: stack.client_status("portal").get("trusted") is False,
        timeout=20,
        message="portal still trusted after leaving the AuthServer's list",
    )
    assert not await skips_consent("portal")


async def test_token_exchange_reaches_the_registration_once_the_authserver_offers_it(stack: Stack) -> None:
    """OAuthClient tokenExchange → token_exchange: refused (NotAllowed) until the AuthServer's clientPolicy
    lists the grant; then registered, and the client's own credentials exchange a token (RFC 8693) for an
    audience of its policy; removing the policy goes back to the server's defaults."""
    grant = "urn:ietf:params:oauth:grant-type:token-exchange"
    policy = {"audiences": ["https://orders-b.example.com"], "allowImpersonation": True}
    await stack.kube.post(
        f"/apis/authyard.dev/v1alpha1/namespaces/{TEAM}/oauthclients",
        oauthclient("gateway", grantTypes=["client_credentials", grant], tokenExchange=policy),
    )
    await wait_for(
        lambda: stack.ready("gateway").get("reason") == "NotAllowed", timeout=30, message="not refused"
    )
    assert grant in stack.ready("gateway")["message"]

    authserver = f"/apis/authyard.dev/v1alpha1/namespaces/{PLATFORM}/authservers/auth"
    allowed = ["client_credentials", "authorization_code", "refresh_token", grant]
    await stack.kube.merge(authserver, {"spec": {"clientPolicy": {"allowedGrantTypes": allowed}}})
    await wait_for(
        lambda: stack.ready("gateway").get("status") == "True", timeout=40, message="gateway not Ready"
    )
    registered = (await stack.admin("GET", "/admin/clients/team-a.gateway")).json()
    assert registered["token_exchange"] == {
        "audiences": ["https://orders-b.example.com"],
        "subject_audiences": [],
        "allow_impersonation": True,
    }

    credentials = stack.secret("gateway-oauth")
    own = await token(credentials)
    assert own.status_code == 200, own.text
    async with httpx.AsyncClient() as http:
        exchanged = await http.post(
            credentials["token_endpoint"],
            data={
                "grant_type": grant,
                "subject_token": own.json()["access_token"],
                "subject_token_type": "urn:ietf:params:oauth:token-type:access_token",
                "audience": "https://orders-b.example.com",
            },
            auth=(credentials["client_id"], credentials["client_secret"]),
        )
    assert exchanged.status_code == 200, exchanged.text
    assert exchanged.json()["issued_token_type"] == "urn:ietf:params:oauth:token-type:access_token"

    await stack.kube.merge(
        f"/apis/authyard.dev/v1alpha1/namespaces/{TEAM}/oauthclients/gateway",
        {"spec": {"tokenExchange": None}},
    )
    await wait_for(lambda: stack.client_status("gateway").get("observedGeneration") == 2, timeout=20)
    registered = (await stack.admin("GET", "/admin/clients/team-a.gateway")).json()
    assert registered["token_exchange"] is None
