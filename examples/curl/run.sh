#!/usr/bin/env bash
# Calls every Gatehouse procedure with plain curl, the way a non-JavaScript
# client would: the superjson `{"json": …}` envelope by hand, queries as GET
# with a URL-encoded `input`, mutations as POST, and one batch. Each output is
# checked with jq; the script exits non-zero at the first mismatch.
#
#   GATEHOUSE_URL=http://127.0.0.1:3000 \
#   GATEHOUSE_ADMIN_EMAIL=admin@example.com GATEHOUSE_ADMIN_PASSWORD=… \
#   GATEHOUSE_OUTBOX_DIR=./data/outbox \
#   examples/curl/run.sh
set -euo pipefail

URL="${GATEHOUSE_URL:-http://127.0.0.1:3000}/trpc"
ADMIN_EMAIL="${GATEHOUSE_ADMIN_EMAIL:?set GATEHOUSE_ADMIN_EMAIL (the users.* procedures need an ADMIN)}"
ADMIN_PASSWORD="${GATEHOUSE_ADMIN_PASSWORD:?set GATEHOUSE_ADMIN_PASSWORD}"
OUTBOX="${GATEHOUSE_OUTBOX_DIR:-./data/outbox}"

BODY_FILE="$(mktemp)"
trap 'rm -f "$BODY_FILE"' EXIT
STATUS=""
BODY=""
CHECKS=0

# mutation PATH INPUT_JSON [TOKEN]: POST /trpc/PATH with body {"json": INPUT}.
mutation() {
  local auth=()
  [[ -n "${3:-}" ]] && auth=(-H "authorization: Bearer $3")
  STATUS="$(curl -sS -o "$BODY_FILE" -w '%{http_code}' -X POST "$URL/$1" \
    -H 'content-type: application/json' "${auth[@]}" --data "{\"json\":$2}")"
  BODY="$(cat "$BODY_FILE")"
}

# query PATH [INPUT_JSON] [TOKEN]: GET /trpc/PATH?input=<url-encoded {"json": INPUT}>.
query() {
  local auth=() qs=""
  [[ -n "${3:-}" ]] && auth=(-H "authorization: Bearer $3")
  if [[ -n "${2:-}" ]]; then
    qs="?input=$(jq -rn --arg v "{\"json\":$2}" '$v|@uri')"
  fi
  STATUS="$(curl -sS -o "$BODY_FILE" -w '%{http_code}' "$URL/$1$qs" "${auth[@]}")"
  BODY="$(cat "$BODY_FILE")"
}

# expect WHAT HTTP_STATUS JQ_FILTER: the last response has that status and
# the filter (applied to the body) is true.
expect() {
  CHECKS=$((CHECKS + 1))
  if [[ "$STATUS" != "$2" ]] || [[ "$(jq -r "$3" <<<"$BODY" 2>/dev/null)" != "true" ]]; then
    echo "FAIL: $1" >&2
    echo "  expected HTTP $2 and: $3" >&2
    echo "  got HTTP $STATUS: $BODY" >&2
    exit 1
  fi
  echo "ok   $1"
}

# jwt_claim TOKEN CLAIM: a claim of the token's (unverified) payload.
jwt_claim() {
  local payload
  payload="$(cut -d. -f2 <<<"$1" | tr '_-' '/+')"
  while (($(printf '%s' "$payload" | wc -c) % 4)); do payload="$payload="; done
  base64 -d <<<"$payload" | jq -r ".$2"
}

# data JQ_PATH: a value out of the last successful result.
data() { jq -r ".result.data.json$1" <<<"$BODY"; }

EMAIL="curl-$(date +%s)-$$@example.com"
PASSWORD="Curl-Example-Passw0rd"
NEW_PASSWORD="Curl-Changed-Passw0rd"

# --- auth.register (mutation, public)
mutation auth.register "{\"email\":\"$EMAIL\",\"password\":\"$PASSWORD\",\"firstName\":\"Curl\",\"lastName\":\"User\"}"
expect "auth.register" 200 ".result.data.json.user.email == \"$EMAIL\" and .result.data.json.user.role == \"VIEWER\" and .result.data.json.expiresIn == 86400"
USER_ID="$(data .user.id)"

mutation auth.register "{\"email\":\"$EMAIL\",\"password\":\"$PASSWORD\",\"firstName\":\"Curl\",\"lastName\":\"User\"}"
expect "auth.register twice is CONFLICT" 409 '.error.json.data.code == "CONFLICT" and .error.json.code == -32009'

mutation auth.register '{"email":"nope","password":"short","firstName":"","lastName":"x"}'
expect "auth.register with bad input is BAD_REQUEST with issues" 400 \
  '.error.json.data.code == "BAD_REQUEST" and (.error.json.data.issues | type == "array" and length >= 1)'

# --- auth.login (mutation, public)
mutation auth.login "{\"email\":\"$EMAIL\",\"password\":\"wrong-password\"}"
expect "auth.login with a wrong password" 401 '.error.json.data.code == "UNAUTHORIZED" and .error.json.message == "Invalid email or password"'

mutation auth.login "{\"email\":\"$EMAIL\",\"password\":\"$PASSWORD\"}"
expect "auth.login" 200 ".result.data.json.user.id == \"$USER_ID\" and (.result.data.json.token | length > 20)"
TOKEN="$(data .token)"

# --- auth.me (query, VIEWER)
query auth.me
expect "auth.me without a token" 401 '.error.json.data.code == "UNAUTHORIZED" and .error.json.data.path == "auth.me"'
query auth.me "" "$TOKEN"
expect "auth.me" 200 ".result.data.json.email == \"$EMAIL\" and .result.data.json.phone == null and (.result.data.json.createdAt | type == \"string\")"

# --- auth.updateProfile (mutation, VIEWER)
mutation auth.updateProfile '{"firstName":"Curly","phone":"+1 555 0100"}' "$TOKEN"
expect "auth.updateProfile" 200 '.result.data.json.firstName == "Curly" and .result.data.json.phone == "+1 555 0100" and .result.data.json.lastName == "User"'

# --- a batch: two queries in one GET, inputs keyed by index
STATUS="$(curl -sS -o "$BODY_FILE" -w '%{http_code}' -H "authorization: Bearer $TOKEN" \
  "$URL/auth.me,auth.sessions?batch=1&input=$(jq -rn '"{}"|@uri')")"
BODY="$(cat "$BODY_FILE")"
expect "batch auth.me,auth.sessions" 200 \
  '(. | length) == 2 and .[0].result.data.json.firstName == "Curly" and (.[1].result.data.json | map(select(.current)) | length) == 1'

# --- auth.sessions (query) and auth.revokeSession (mutation)
mutation auth.login "{\"email\":\"$EMAIL\",\"password\":\"$PASSWORD\"}"
expect "a second login" 200 '.result.data.json.token != null'
OTHER_TOKEN="$(data .token)"
# Registration and each login opened a session: three in all. The token's
# `sid` claim names its session.
OTHER_SESSION="$(jwt_claim "$OTHER_TOKEN" sid)"
query auth.sessions "" "$TOKEN"
expect "auth.sessions lists the three sessions" 200 \
  "(.result.data.json | length) == 3 and (.result.data.json | map(select(.current)) | length) == 1 and (.result.data.json | map(.id) | index(\"$OTHER_SESSION\") != null)"
mutation auth.revokeSession "{\"id\":\"$OTHER_SESSION\"}" "$TOKEN"
expect "auth.revokeSession" 200 '.result.data.json.success == true'
query auth.me "" "$OTHER_TOKEN"
expect "the revoked session's token is refused" 401 '.error.json.data.code == "UNAUTHORIZED"'

# --- auth.refreshToken (mutation, bearer token)
mutation auth.refreshToken null "$TOKEN"
expect "auth.refreshToken" 200 ".result.data.json.user.id == \"$USER_ID\""
TOKEN="$(data .token)"

# --- auth.changePassword (mutation, VIEWER)
mutation auth.changePassword "{\"currentPassword\":\"wrong-password\",\"newPassword\":\"$NEW_PASSWORD\"}" "$TOKEN"
expect "auth.changePassword with a wrong current password" 401 '.error.json.data.code == "UNAUTHORIZED"'
mutation auth.changePassword "{\"currentPassword\":\"$PASSWORD\",\"newPassword\":\"$NEW_PASSWORD\"}" "$TOKEN"
expect "auth.changePassword" 200 ".result.data.json.user.email == \"$EMAIL\""
TOKEN="$(data .token)"

# --- auth.requestPasswordReset + auth.resetPassword (mutations, public)
mutation auth.requestPasswordReset "{\"email\":\"$EMAIL\"}"
expect "auth.requestPasswordReset" 200 '.result.data.json.success == true'
# The mail may be written just after the answer: wait for it (15 s at most).
RESET_TOKEN=""
for _ in $(seq 1 150); do
  MAIL="$(grep -l -i -- "$EMAIL" "$OUTBOX"/*.eml 2>/dev/null | xargs -r ls -t | head -n 1 || true)"
  if [[ -n "$MAIL" ]]; then
    RESET_TOKEN="$(sed -e 's/\r$//' "$MAIL" | sed -n 's/^Token: *\([^ ]*\)$/\1/p' | tail -n 1)"
    [[ -n "$RESET_TOKEN" ]] && break
  fi
  sleep 0.1
done
[[ -n "$RESET_TOKEN" ]] || { echo "FAIL: no reset mail with a 'Token:' line for $EMAIL in $OUTBOX" >&2; exit 1; }
mutation auth.resetPassword "{\"email\":\"$EMAIL\",\"token\":\"wrong\",\"password\":\"$PASSWORD\"}"
expect "auth.resetPassword with a wrong token" 400 '.error.json.data.code == "BAD_REQUEST"'
mutation auth.resetPassword "{\"email\":\"$EMAIL\",\"token\":\"$RESET_TOKEN\",\"password\":\"$PASSWORD\"}"
expect "auth.resetPassword" 200 '.result.data.json.success == true'
query auth.me "" "$TOKEN"
expect "a reset revokes every session" 401 '.error.json.data.code == "UNAUTHORIZED"'

# --- auth.logoutAll (mutation, VIEWER)
mutation auth.login "{\"email\":\"$EMAIL\",\"password\":\"$PASSWORD\"}"
expect "auth.login with the reset password" 200 '.result.data.json.token != null'
TOKEN="$(data .token)"
mutation auth.logoutAll null "$TOKEN"
expect "auth.logoutAll" 200 '.result.data.json.success == true'
query auth.me "" "$TOKEN"
expect "auth.me after logoutAll" 401 '.error.json.data.code == "UNAUTHORIZED"'

# --- users.* (ADMIN)
mutation auth.login "{\"email\":\"$EMAIL\",\"password\":\"$PASSWORD\"}"
VIEWER_TOKEN="$(data .token)"
query users.list '{}' "$VIEWER_TOKEN"
expect "users.list as a VIEWER is FORBIDDEN" 403 '.error.json.data.code == "FORBIDDEN" and .error.json.data.httpStatus == 403'

mutation auth.login "{\"email\":\"$ADMIN_EMAIL\",\"password\":\"$ADMIN_PASSWORD\"}"
expect "admin login" 200 '.result.data.json.user.role == "ADMIN"'
ADMIN_TOKEN="$(data .token)"
query users.list "{\"search\":\"$EMAIL\",\"page\":1,\"pageSize\":10}" "$ADMIN_TOKEN"
expect "users.list" 200 ".result.data.json.total == 1 and .result.data.json.items[0].id == \"$USER_ID\" and .result.data.json.page == 1 and .result.data.json.pageSize == 10"
mutation users.setRole "{\"id\":\"$USER_ID\",\"role\":\"OPERATOR\"}" "$ADMIN_TOKEN"
expect "users.setRole" 200 '.result.data.json.role == "OPERATOR"'
query users.list '{"role":"OPERATOR"}' "$ADMIN_TOKEN"
expect "users.list filtered by role" 200 ".result.data.json.items | map(.id) | index(\"$USER_ID\") != null"
mutation users.delete "{\"id\":\"$USER_ID\"}" "$ADMIN_TOKEN"
expect "users.delete" 200 '.result.data.json.success == true'
mutation users.delete "{\"id\":\"$USER_ID\"}" "$ADMIN_TOKEN"
expect "users.delete of an unknown id is NOT_FOUND" 404 '.error.json.data.code == "NOT_FOUND"'

# --- auth.logout (mutation, public)
mutation auth.logout null "$ADMIN_TOKEN"
expect "auth.logout" 200 '.result.data.json.success == true'
query auth.me "" "$ADMIN_TOKEN"
expect "auth.me after logout" 401 '.error.json.data.code == "UNAUTHORIZED"'
mutation auth.logout null
expect "auth.logout without a token" 200 '.result.data.json.success == true'

# --- protocol details a curl user meets
STATUS="$(curl -sS -o "$BODY_FILE" -w '%{http_code}' "$URL/auth.login")"
BODY="$(cat "$BODY_FILE")"
expect "GET on a mutation is METHOD_NOT_SUPPORTED" 405 '.error.json.data.code == "METHOD_NOT_SUPPORTED"'
query nope.nothing
expect "an unknown procedure is NOT_FOUND" 404 '.error.json.data.code == "NOT_FOUND"'

echo "examples/curl: all $CHECKS checks passed"
