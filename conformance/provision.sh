#!/usr/bin/env bash
# Makes what the conformance suite signs in with, the way the README does it: two confidential clients with
# `authserver clients create` and one user with `authserver users create`, against the configuration in the
# environment (AUTHSERVER_DATABASE_URL, AUTHSERVER_SIGNING_KEYS_FILE... as for `authserver serve`). Then
# writes the suite's test configuration (conformance/suite_config.py).
#
#   ISSUER=https://authyard.test:9443 conformance/provision.sh OUT_DIR
#
# OUT_DIR receives client.json, client2.json (each holds its secret: the CLI prints it once), password and
# config.json, all mode 0600; and for the back-channel logout plan client-backchannel.json (a third client,
# registered with the suite's back-channel logout URI: the other plans' modules must receive no logout token,
# which the suite would take as an unexpected call) and config-backchannel.json. Optional: SUITE_BASE_URL (the suite's public address), AUTHSERVER (the
# command), PYTHON (an interpreter that can import this repository's `conformance` package).
set -euo pipefail

out="${1:?usage: ISSUER=URL conformance/provision.sh OUT_DIR}"
: "${ISSUER:?ISSUER: the issuer URL of the server, as the suite reaches it}"
authserver="${AUTHSERVER:-authserver}"
python="${PYTHON:-python3}"
root="$(cd "$(dirname "$0")/.." && pwd)"

umask 077
mkdir -p "$out"
redirect_uri="$(cd "$root" && "$python" -c 'import sys
from conformance.suite_config import SUITE_BASE_URL, redirect_uri
print(redirect_uri(sys.argv[1] or SUITE_BASE_URL))' "${SUITE_BASE_URL:-}")"
post_logout_redirect_uri="$(cd "$root" && "$python" -c 'import sys
from conformance.suite_config import SUITE_BASE_URL, post_logout_redirect_uri
print(post_logout_redirect_uri(sys.argv[1] or SUITE_BASE_URL))' "${SUITE_BASE_URL:-}")"

for n in 1 2; do
  file="$out/client.json"
  [[ $n == 2 ]] && file="$out/client2.json"
  "$authserver" clients create --name "OpenID conformance suite ($n)" --client-id "conformance-$n" \
    --grant-type authorization_code --grant-type refresh_token \
    --scope openid --scope profile --scope email --pkce-optional \
    --redirect-uri "$redirect_uri" --post-logout-redirect-uri "$post_logout_redirect_uri" >"$file"
done

backchannel_logout_uri="$(cd "$root" && "$python" -c 'import sys
from conformance.suite_config import SUITE_BASE_URL, backchannel_logout_uri
print(backchannel_logout_uri(sys.argv[1] or SUITE_BASE_URL))' "${SUITE_BASE_URL:-}")"
"$authserver" clients create --name "OpenID conformance suite (back-channel logout)" \
  --client-id conformance-backchannel \
  --grant-type authorization_code --grant-type refresh_token \
  --scope openid --scope profile --scope email --pkce-optional \
  --redirect-uri "$redirect_uri" --post-logout-redirect-uri "$post_logout_redirect_uri" \
  --backchannel-logout-uri "$backchannel_logout_uri" --backchannel-logout-session-required \
  >"$out/client-backchannel.json"

# A password nobody chose, for the suite's browser to type into our login page.
"$python" -c 'import secrets; print(secrets.token_urlsafe(24))' >"$out/password"
"$authserver" users create --username conformance --password-stdin \
  --email conformance@example.com --name "Conformance Tester" <"$out/password" >/dev/null

(cd "$root" && "$python" -m conformance.suite_config --issuer "$ISSUER" \
  --client "$out/client.json" --client2 "$out/client2.json" \
  --username conformance --password-file "$out/password") >"$out/config.json"
(cd "$root" && "$python" -m conformance.suite_config --issuer "$ISSUER" \
  --client "$out/client-backchannel.json" --client2 "$out/client2.json" \
  --username conformance --password-file "$out/password") >"$out/config-backchannel.json"
echo "provision: clients conformance-1, conformance-2 (redirect URI $redirect_uri, post-logout" \
  "$post_logout_redirect_uri), conformance-backchannel (also $backchannel_logout_uri), user conformance;" \
  "suite configuration in $out/config.json and $out/config-backchannel.json"
