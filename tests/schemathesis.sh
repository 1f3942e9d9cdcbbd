#!/usr/bin/env bash
# Property-based conformance run of the API against its own OpenAPI document:
# schemathesis (PyPI, pinned, in a virtualenv under target/) generates
# requests for every operation of GET /openapi.json (tRPC endpoints and REST
# routes) and checks that the server never answers 5xx, and that statuses,
# content types and bodies match the document. Guarded operations run with an
# ADMIN's bearer token, in two passes (see the end). Bounded: a few examples
# per operation, a fixed seed, and an overall timeout.
#
#   GATEHOUSE_URL=http://127.0.0.1:3000 GATEHOUSE_ADMIN_EMAIL=… GATEHOUSE_ADMIN_PASSWORD=… \
#   tests/schemathesis.sh
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
URL="${GATEHOUSE_URL:?set GATEHOUSE_URL}"
EMAIL="${GATEHOUSE_ADMIN_EMAIL:?set GATEHOUSE_ADMIN_EMAIL}"
PASSWORD="${GATEHOUSE_ADMIN_PASSWORD:?set GATEHOUSE_ADMIN_PASSWORD}"
VERSION=4.32.5
VENV="$ROOT/target/schemathesis-venv"

if [[ ! -x "$VENV/bin/st" ]] || ! "$VENV/bin/st" --version | grep -q "$VERSION"; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q "schemathesis==$VERSION"
fi

TOKEN="$(curl -sS -X POST "$URL/api/auth/login" -H 'content-type: application/json' \
  --data "$(jq -n --arg e "$EMAIL" --arg p "$PASSWORD" '{email: $e, password: $p}')" | jq -r .token)"
[[ -n "$TOKEN" && "$TOKEN" != null ]] || { echo "could not log in as $EMAIL" >&2; exit 1; }

cd "$ROOT/target"
run() {
  "$VENV/bin/st" run "$URL/openapi.json" --url "$URL" \
    -H "authorization: Bearer $TOKEN" \
    --phases examples,fuzzing \
    --max-examples "${SCHEMATHESIS_EXAMPLES:-10}" \
    --seed 20261129 \
    --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
    --request-timeout 10 \
    "$@"
}
# First every operation that keeps the token working, so the guarded ones
# are exercised past their guard; then all of them, including those that
# end the session (after which guarded calls are checked as 401s).
run --exclude-operation-id-regex '(logout|logoutAll|refreshToken|changePassword|users\.delete|users_delete|users\.setRole|users_setRole)$'
run
