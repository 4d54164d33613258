"""The modules of the OpenID certification plans the conformance workflow runs
(.github/workflows/conformance.yml), exactly as the suite names them (each module class's
``@PublishTestModule(testName=...)``), in the plans' order.

Read from openid-certification/conformance-suite, src/main/java/net/openid/conformance/openid/:
OIDCCBasicTestPlan.java at commit 25a83b8bae1d8839199578e5897acd492680bbe2 and OIDCCConfigTestPlan.java at
3f9fa8302bb82b616b9bce6592619c74414176cc (the workflow pins 781b599297ccf4bdb71c2573deafb82546127d90, which
the reference index did not hold; another stored version of the basic plan lists the same modules).
OIDCCRpInitiatedLogoutTestPlan.java (the module list of the stored version, each module's testName read from
its class in the same directory).

The suite itself marks two basic modules not applicable to static clients (``@VariantNotApplicable``:
oidcc-idtoken-unsigned, oidcc-request-uri-unsigned-supported-correctly-or-rejected-as-unsupported); they
stay listed, as the plan lists them, and are tested for what they would check.
"""

from __future__ import annotations

SUITE_REPOSITORY = "openid-certification/conformance-suite"
BASIC_PLAN_COMMIT = "25a83b8bae1d8839199578e5897acd492680bbe2"
CONFIG_PLAN_COMMIT = "3f9fa8302bb82b616b9bce6592619c74414176cc"

BASIC_PLAN = "oidcc-basic-certification-test-plan"
CONFIG_PLAN = "oidcc-config-certification-test-plan"

BASIC_MODULES: tuple[str, ...] = (
    # response type code, client_secret_basic
    "oidcc-server",
    "oidcc-response-type-missing",
    "oidcc-idtoken-signature",
    "oidcc-idtoken-unsigned",
    "oidcc-userinfo-get",
    "oidcc-userinfo-post-header",
    "oidcc-userinfo-post-body",
    "oidcc-ensure-request-without-nonce-succeeds-for-code-flow",
    "oidcc-scope-profile",
    "oidcc-scope-email",
    "oidcc-scope-address",
    "oidcc-scope-phone",
    "oidcc-scope-all",
    "oidcc-ensure-other-scope-order-succeeds",
    "oidcc-display-page",
    "oidcc-display-popup",
    "oidcc-prompt-login",
    "oidcc-prompt-none-not-logged-in",
    "oidcc-prompt-none-logged-in",
    "oidcc-max-age-1",
    "oidcc-max-age-10000",
    "oidcc-ensure-request-with-unknown-parameter-succeeds",
    "oidcc-id-token-hint",
    "oidcc-login-hint",
    "oidcc-ui-locales",
    "oidcc-claims-locales",
    "oidcc-ensure-request-with-acr-values-succeeds",
    "oidcc-codereuse",
    "oidcc-codereuse-30seconds",
    "oidcc-ensure-registered-redirect-uri",
    "oidcc-ensure-post-request-succeeds",
    # client_secret_post
    "oidcc-server-client-secret-post",
    # response type code, client_secret_basic again
    "oidcc-request-uri-unsigned-supported-correctly-or-rejected-as-unsupported",
    "oidcc-unsigned-request-object-supported-correctly-or-rejected-as-unsupported",
    "oidcc-claims-essential",
    "oidcc-ensure-request-object-with-redirect-uri",
    "oidcc-refresh-token",
    "oidcc-ensure-request-with-valid-pkce-succeeds",
)

CONFIG_MODULES: tuple[str, ...] = ("oidcc-discovery-endpoint-verification",)

RP_INITIATED_LOGOUT_PLAN = "oidcc-rp-initiated-logout-certification-test-plan"
RP_INITIATED_LOGOUT_MODULES: tuple[str, ...] = (
    # server_metadata=discovery
    "oidcc-rp-initiated-logout-discovery-endpoint-verification",
    # then per client registration
    "oidcc-rp-initiated-logout",
    "oidcc-rp-initiated-logout-bad-post-logout-redirect-uri",
    "oidcc-rp-initiated-logout-modified-id-token-hint",
    "oidcc-rp-initiated-logout-no-id-token-hint",
    "oidcc-rp-initiated-logout-no-params",
    "oidcc-rp-initiated-logout-no-post-logout-redirect-uri",
    "oidcc-rp-initiated-logout-no-state",
    "oidcc-rp-initiated-logout-only-state",
    "oidcc-rp-initiated-logout-query-added-to-post-logout-redirect-uri",
    "oidcc-rp-initiated-logout-bad-id-token-hint",
)

# OIDCCBackchannelRpInitiatedLogoutTestPlan.java at 25b6a0c5e90c5048ebdeed5434f57cdbf2e6b7cc ("Back-Channel
# OP"): discovery, then the logout with a back-channel URI registered (client_secret_basic, default mode).
BACKCHANNEL_LOGOUT_PLAN = "oidcc-backchannel-rp-initiated-logout-certification-test-plan"
BACKCHANNEL_LOGOUT_MODULES: tuple[str, ...] = (
    "oidcc-backchannel-logout-discovery-endpoint-verification",
    "oidcc-backchannel-rp-initiated-logout",
)

PLANS: dict[str, tuple[str, ...]] = {
    BASIC_PLAN: BASIC_MODULES,
    CONFIG_PLAN: CONFIG_MODULES,
    RP_INITIATED_LOGOUT_PLAN: RP_INITIATED_LOGOUT_MODULES,
    BACKCHANNEL_LOGOUT_PLAN: BACKCHANNEL_LOGOUT_MODULES,
}
