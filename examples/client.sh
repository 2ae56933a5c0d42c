#!/usr/bin/env bash
# The tutorial's calls against a local claw. Usage: TOKEN=ocl_... ./examples/client.sh
set -euo pipefail
URL=${CLAW_URL:-http://localhost:3000}
: "${TOKEN:?set TOKEN to a token from 'claw token create'}"

curl -s -H "Authorization: Bearer $TOKEN" "$URL/api/v1/status" | jq
curl -s -H "Authorization: Bearer $TOKEN" "$URL/api/v1/config" | jq
curl -s -X PATCH -H "Authorization: Bearer $TOKEN" -H "Content-Type: application/json" \
  "$URL/api/v1/config" -d '{"model": {"provider": "anthropic", "max_context": 8192}}' | jq
curl -s -H "Authorization: Bearer $TOKEN" "$URL/api/v1/resources?limit=100" | jq '.items[] | {kind, name, ready, reason}'
