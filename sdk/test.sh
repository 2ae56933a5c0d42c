#!/usr/bin/env bash
# Tests both SDKs against the real server: sdk/js (tsc over the type declarations, then
# node's test runner), the Slack example on it (examples/slack-notifier-sdk), and sdk/python
# (installed from ./sdk/python into a venv, mypy --strict, pytest). Needs target/debug/claw (`cargo build` or `cargo test` makes it; or set CLAW_BIN),
# Node.js 18+ with npm, and Python 3.10+; installs what a fresh Debian machine lacks.
# Prints one closing line per suite and exits non-zero if any test failed.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
export CLAW_BIN="${CLAW_BIN:-$root/target/debug/claw}"
if [ ! -x "$CLAW_BIN" ]; then
  echo "sdk/test.sh: $CLAW_BIN does not exist; run \`cargo build\` first (or set CLAW_BIN)" >&2
  exit 2
fi
apt_install() {
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "sdk/test.sh: cannot install $* (no apt-get); install it and retry" >&2
    return 2
  fi
  echo "--- apt-get install $*"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}
command -v npm >/dev/null 2>&1 || apt_install nodejs npm || exit 2
command -v python3 >/dev/null 2>&1 || apt_install python3 python3-venv || exit 2
# `ip` brings up loopback in the private network namespace where the tutorial's example runs
# verbatim against 127.0.0.1:3000 (without it that test substitutes the base URL).
command -v ip >/dev/null 2>&1 || apt_install iproute2 || true

# The MCP tests of both SDKs run the real server-everything that tests/mcp installs.
if [ ! -x tests/mcp/node_modules/.bin/mcp-server-everything ]; then
  echo "--- npm ci (tests/mcp)"
  (cd tests/mcp && npm ci --no-audit --no-fund --loglevel=error)
fi

status=0
log=$(mktemp)
trap 'rm -f "$log"' EXIT

echo "--- sdk/js: npm ci, tsc (type declarations), node --test"
js_ok=1
(cd sdk/js && npm ci --no-audit --no-fund --loglevel=error && npx tsc -p tsconfig.json) || js_ok=0
if [ "$js_ok" = 1 ]; then
  (cd sdk/js && node --test test/*.test.js) 2>&1 | tee "$log" || js_ok=0
fi
js_pass=$(awk '/^# pass /{print $3}' "$log" | tail -1)
js_fail=$(awk '/^# fail /{print $3}' "$log" | tail -1)
echo "sdk/js: ${js_pass:-0} passed, ${js_fail:-?} failed$([ "$js_ok" = 1 ] || echo ' (FAILED)')"
[ "$js_ok" = 1 ] || status=1

echo "--- examples/slack-notifier-sdk: npm ci, node --test (the tutorial's Slack integration on the SDK)"
ex_ok=1
(cd examples/slack-notifier-sdk && npm ci --no-audit --no-fund --loglevel=error && node --test test/*.test.js) >"$log" 2>&1 || ex_ok=0
[ "$ex_ok" = 1 ] || cat "$log"
ex_pass=$(awk '/^# pass /{print $3}' "$log" | tail -1)
ex_fail=$(awk '/^# fail /{print $3}' "$log" | tail -1)
echo "examples/slack-notifier-sdk: ${ex_pass:-0} passed, ${ex_fail:-?} failed$([ "$ex_ok" = 1 ] || echo ' (FAILED)')"
[ "$ex_ok" = 1 ] || status=1

echo "--- sdk/python: venv, pip install ./sdk/python[test], mypy --strict, pytest"
venv=$root/target/sdk-python-venv
if [ ! -x "$venv/bin/python" ]; then
  rm -rf "$venv"
  if ! python3 -m venv "$venv" >/dev/null 2>&1; then
    rm -rf "$venv"
    apt_install python3-venv || exit 2
    python3 -m venv "$venv"
  fi
fi
: >"$log"
py_ok=1
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check "./sdk/python[test]" || py_ok=0
if [ "$py_ok" = 1 ]; then
  (cd sdk/python && "$venv/bin/python" -m mypy) || py_ok=0
  # From sdk/python, so the installed package (not src/) is what the tests import.
  (cd sdk/python && "$venv/bin/python" -m pytest -p no:cacheprovider tests) 2>&1 | tee "$log" || py_ok=0
fi
py_pass=$(grep -Eo '[0-9]+ passed' "$log" | tail -1 | cut -d' ' -f1 || true)
py_fail=$(grep -Eo '[0-9]+ (failed|error)' "$log" | awk '{n += $1} END {print n + 0}' || true)
echo "sdk/python: ${py_pass:-0} passed, ${py_fail} failed$([ "$py_ok" = 1 ] || echo ' (FAILED)')"
[ "$py_ok" = 1 ] || status=1

exit $status
