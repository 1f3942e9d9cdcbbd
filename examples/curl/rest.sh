#!/usr/bin/env bash
# The REST routes with plain curl: the same procedures as examples/curl/run.sh,
# plain JSON in and out (no envelope), errors as
# {"timestamp","status","error","message","path","code","issues"?}. Each answer
# is checked with jq; the script exits non-zero at the first mismatch.
#
#   GATEHOUSE_URL=http://127.0.0.1:3000 \
#   GATEHOUSE_ADMIN_EMAIL=admin@example.com GATEHOUSE_ADMIN_PASSWORD=… \
#   examples/curl/rest.sh
set -euo pipefail

API="${GATEHOUSE_URL:-http://127.0.0.1:3000}${GATEHOUSE_REST_PREFIX:-/api}"
ADMIN_EMAIL="${GATEHOUSE_ADMIN_EMAIL:?set GATEHOUSE_ADMIN_EMAIL (the /users routes need an ADMIN)}"
ADMIN_PASSWORD="${GATEHOUSE_ADMIN_PASSWORD:?set GATEHOUSE_ADMIN_PASSWORD}"

BODY_FILE="$(mktemp)"
trap 'rm -f "$BODY_FILE"' EXIT
STATUS=""
BODY=""
CHECKS=0

# call METHOD PATH [JSON_BODY] [TOKEN]: one request to $API/PATH.
call() {
  local args=(-sS -o "$BODY_FILE" -w '%{http_code}' -X "$1" "$API$2")
  [[ -n "${3:-}" ]] && args+=(-H 'content-type: application/json' --data "$3")
  [[ -n "${4:-}" ]] && args+=(-H "authorization: Bearer $4")
  STATUS="$(curl "${args[@]}")"
  BODY="$(cat "$BODY_FILE")"
}

# expect WHAT HTTP_STATUS JQ_FILTER: the last answer has that status and the
# filter (applied to the body) is true.
expect() {
  CHECKS=$((CHECKS + 1))
  if [[ "$STATUS" != "$2" ]] || [[ "$(jq -r "$3" <<<"${BODY:-null}" 2>/dev/null)" != "true" ]]; then
    echo "FAIL: $1" >&2
    echo "  expected HTTP $2 and: $3" >&2
    echo "  got HTTP $STATUS: $BODY" >&2
    exit 1
  fi
  echo "ok   $1"
}

EMAIL="rest-$(date +%s)-$$@example.com"
PASSWORD="Rest-Example-Passw0rd"
ERROR_SHAPE='(.timestamp | type == "string") and (.error | type == "string") and (.path | startswith("/"))'

call POST /auth/register "{\"email\":\"$EMAIL\",\"password\":\"$PASSWORD\",\"firstName\":\"Rest\",\"lastName\":\"User\"}"
expect "POST /auth/register" 201 ".user.email == \"$EMAIL\" and (.token | length > 20)"
USER_ID="$(jq -r .user.id <<<"$BODY")"

call POST /auth/register "{\"email\":\"$EMAIL\",\"password\":\"$PASSWORD\",\"firstName\":\"Rest\",\"lastName\":\"User\"}"
expect "POST /auth/register twice is 409" 409 ".status == 409 and .code == \"CONFLICT\" and $ERROR_SHAPE"

call POST /auth/register '{"email":"nope","password":"short","firstName":"","lastName":"x"}'
expect "POST /auth/register with bad input is 400 with issues" 400 '.code == "BAD_REQUEST" and (.issues | length >= 1)'

call POST /auth/login "{\"email\":\"$EMAIL\",\"password\":\"wrong-password\"}"
expect "POST /auth/login with a wrong password is 401" 401 '.message == "Invalid email or password" and .path == "'"${GATEHOUSE_REST_PREFIX:-/api}"'/auth/login"'

call POST /auth/login "{\"email\":\"$EMAIL\",\"password\":\"$PASSWORD\"}"
expect "POST /auth/login" 200 ".user.id == \"$USER_ID\""
TOKEN="$(jq -r .token <<<"$BODY")"

call GET /user/profile
expect "GET /user/profile without a token is 401" 401 '.code == "UNAUTHORIZED"'
call GET /user/profile "" "$TOKEN"
expect "GET /user/profile" 200 ".email == \"$EMAIL\" and .phone == null"
call PUT /user/profile '{"firstName":"Resty","phone":"+1 555 0100"}' "$TOKEN"
expect "PUT /user/profile" 200 '.firstName == "Resty" and .phone == "+1 555 0100"'

call GET /user/sessions "" "$TOKEN"
expect "GET /user/sessions" 200 '(length >= 2) and (map(select(.current)) | length == 1)'
OTHER="$(jq -r 'map(select(.current | not))[0].id' <<<"$BODY")"
call DELETE "/user/sessions/$OTHER" "" "$TOKEN"
expect "DELETE /user/sessions/{id}" 200 '.success == true'
call DELETE "/user/sessions/$OTHER" "" "$TOKEN"
expect "DELETE /user/sessions/{id} again is 404" 404 '.code == "NOT_FOUND"'

call POST /auth/refresh "" "$TOKEN"
expect "POST /auth/refresh" 200 '(.token | length > 20)'
TOKEN="$(jq -r .token <<<"$BODY")"

call GET /users "" "$TOKEN"
expect "GET /users as VIEWER is 403" 403 '.code == "FORBIDDEN"'
call POST /auth/login "{\"email\":\"$ADMIN_EMAIL\",\"password\":\"$ADMIN_PASSWORD\"}"
expect "POST /auth/login as the admin" 200 '.user.role == "ADMIN"'
ADMIN="$(jq -r .token <<<"$BODY")"
call GET "/users?search=$EMAIL&pageSize=5" "" "$ADMIN"
expect "GET /users?search=" 200 ".total == 1 and .items[0].id == \"$USER_ID\" and .pageSize == 5"
call PUT "/users/$USER_ID/role" '{"role":"OPERATOR"}' "$ADMIN"
expect "PUT /users/{id}/role" 200 '.role == "OPERATOR"'

call POST /auth/logout "" "$TOKEN"
expect "POST /auth/logout" 200 '.success == true'
call DELETE "/users/$USER_ID" "" "$ADMIN"
expect "DELETE /users/{id}" 200 '.success == true'
call DELETE "/users/$USER_ID" "" "$ADMIN"
expect "DELETE /users/{id} again is 404" 404 '.code == "NOT_FOUND"'

echo "examples/curl/rest.sh: $CHECKS checks passed"
