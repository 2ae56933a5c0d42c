#!/usr/bin/env bash
# Conformance of the live API to its OpenAPI document, by an independent tool (schemathesis).
#
# Starts `claw serve` (target/debug/claw, built by `cargo test`) on a fresh manifests dir with a
# full-scope token, and runs schemathesis against GET /api/v1/openapi.json: every operation,
# positive and negative data, stateful links (create a webhook, then read / patch / delete it).
# Pass = no 5xx, and every status, content type, header and body as the document says.
#
# Generated data never leaves the machine: the server and schemathesis run in a network
# namespace of their own with only loopback up (`unshare -n`); the served Config also limits
# webhook deliveries to loopback and runs tasks with a local program (`provider: command`).
# The OpenAI-compatible `/v1` operations stay off (Config `api.openai_compatible` unset), so
# they answer their documented 404; tests/it/openai.rs drives them with the official client.
# Where namespaces are not permitted the run goes ahead without one, confined by that Config,
# and says so.
#
# Usage: tests/conformance/run.sh   (from anywhere; CI calls it after `cargo test`).
# Env: CONFORMANCE_MAX_EXAMPLES (default 25), CONFORMANCE_SEED (fixed by default, so a run is
# reproducible), CONFORMANCE_TIMEOUT seconds (default 420).
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)

SCHEMATHESIS_VERSION=4.32.5
venv="$root/target/conformance/venv"
max_examples=${CONFORMANCE_MAX_EXAMPLES:-25}
hard_timeout=${CONFORMANCE_TIMEOUT:-420}

# --- what a fresh machine lacks: python3 with venv, schemathesis, the binary
if ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
  echo "--- installing python3-venv"
  apt-get update -qq && apt-get install -y -qq python3 python3-venv >/dev/null
fi
if ! "$venv/bin/schemathesis" --version 2>/dev/null | grep -q "$SCHEMATHESIS_VERSION"; then
  echo "--- installing schemathesis $SCHEMATHESIS_VERSION into $venv"
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
fi
claw="$root/target/debug/claw"
if [ ! -x "$claw" ]; then
  cargo build --locked --quiet
fi

# --- a fresh server state: Config confined to loopback, a full-scope token
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/manifests" "$work/data" "$work/registry"
cat > "$work/manifests/config.yaml" <<YAML
apiVersion: openclaw.dev/v1
kind: Config
metadata:
  name: default
spec:
  model:
    # Tasks echo their prompt: nothing is sent to a model provider.
    provider: command
    command: ["cat"]
  tasks:
    # Short, so that an event stream (open until its task ends) ends well within the
    # request timeout below even when many generated tasks queue up.
    concurrency: 8
    timeout_seconds: 5
    max_timeout_seconds: 10
  rate_limit:
    # High enough that the run tests the API rather than the limiter.
    requests_per_minute: 100000
    burst: 10000
  webhooks:
    timeout_seconds: 2
    max_attempts: 1
    # Deliveries only to loopback, whatever URLs the tool invents.
    allow_networks: ["127.0.0.0/8", "::1/128"]
  skills:
    # An empty local registry: every skill is unknown, nothing is downloaded.
    registry: $work/registry
YAML
# An MCP server that exits at once (status `failed`), so its read endpoints answer 200 too.
cat > "$work/manifests/mcp.yaml" <<YAML
apiVersion: openclaw.dev/v1
kind: McpServer
metadata:
  name: exits
spec:
  command: "true"
YAML
token=$("$claw" token create --manifests "$work/manifests" --name conformance --scope full 2>/dev/null)

cat > "$work/inner.sh" <<'INNER'
#!/usr/bin/env bash
# Runs inside the namespace (or not, see run.sh): server, then schemathesis, then stop.
set -uo pipefail
# schemathesis keeps a cache in the current directory: keep it out of the repository.
cd "$WORK"
addr=127.0.0.1:38080
NO_COLOR=1 "$CLAW" serve --manifests "$WORK/manifests" --data "$WORK/data" --listen "$addr" \
  >"$WORK/server.log" 2>&1 &
server=$!
trap 'kill "$server" 2>/dev/null; wait "$server" 2>/dev/null' EXIT
common=(
  -H "Authorization: Bearer $TOKEN"
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance,ignored_auth,use_after_free,ensure_resource_availability
  --max-examples "$MAX_EXAMPLES"
  --request-timeout 30
  --wait-for-schema 60
  --suppress-health-check all
  --seed "${CONFORMANCE_SEED:-20261201}"
  # One worker: CPython 3.11 (Debian bookworm's) can fail `ast.parse` run from several threads
  # at once ("SystemError: AST constructor recursion depth mismatch", CPython gh-106905), which
  # hypothesis does while naming strategies; a CI run lost the coverage phase to it.
  --workers 1
)
url="http://$addr/api/v1/openapi.json"
status=0
# PATCH /config runs last and alone: a random but valid patch (say, a rate limit of 1 per
# minute) would otherwise change what every later call answers.
"$ST" run "$url" "${common[@]}" --exclude-operation-id config_update || status=1
"$ST" run "$url" "${common[@]}" --include-operation-id config_update --phases examples,coverage,fuzzing || status=1
if grep -q "panicked" "$WORK/server.log"; then
  echo "the server panicked:"; grep -n -A5 "panicked" "$WORK/server.log"; status=1
fi
exit $status
INNER
chmod +x "$work/inner.sh"
export CLAW="$claw" WORK="$work" TOKEN="$token" ST="$venv/bin/schemathesis" MAX_EXAMPLES="$max_examples"

out="$work/schemathesis.out"
netns=no
if unshare -n true 2>/dev/null; then
  if ! command -v ip >/dev/null 2>&1; then
    echo "--- installing iproute2 (to bring up loopback in the namespace)"
    apt-get update -qq && apt-get install -y -qq iproute2 >/dev/null
  fi
  unshare -n sh -c 'ip link set lo up' 2>/dev/null && netns=yes
fi
if [ "$netns" = yes ]; then
  echo "--- schemathesis $SCHEMATHESIS_VERSION against claw serve, in a network namespace (loopback only)"
  set +e
  timeout --kill-after=10 "$hard_timeout" unshare -n sh -c 'ip link set lo up && exec "$WORK/inner.sh"' 2>&1 | tee "$out"
  status=${PIPESTATUS[0]}
  set -e
else
  echo "--- WARNING: network namespaces are not permitted here; running without one."
  echo "    Outbound traffic is confined by the served Config only (command provider, webhooks to loopback)."
  set +e
  timeout --kill-after=10 "$hard_timeout" "$work/inner.sh" 2>&1 | tee "$out"
  status=${PIPESTATUS[0]}
  set -e
fi
if [ "$status" -ne 0 ]; then
  echo "--- server log (last 40 lines)"; tail -n 40 "$work/server.log" || true
fi
# schemathesis's closing lines, one per run, e.g. "===== 31 passed in 40.12s =====".
echo "conformance: $(grep -E '^=+ .* in [0-9.]+s =+$' "$out" | sed -E 's/^=+ (.*) =+$/\1/' | paste -sd ';' - | sed 's/;/; /g') (exit $status)"
exit "$status"
