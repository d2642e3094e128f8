#!/usr/bin/env bash
# The README's quick start, against a running server (`make run`):
# get a key, send a batch of events, read the mood back.
#
#   BASE=http://127.0.0.1:8000 examples/quickstart.sh
#
# Needs only curl and python3 (for reading the JSON answers).
set -euo pipefail

BASE="${BASE:-http://127.0.0.1:8000}"
SESSION="${SESSION:-user_$(date +%s)}"

# field NAME: print one top-level field of the JSON document on stdin.
field() { python3 -c 'import json, sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }
pretty() { python3 -m json.tool; }

if ! curl -fsS "$BASE/health" >/dev/null 2>&1; then
  echo "No SessionMood server at $BASE: start one with 'make run' (or set BASE)." >&2
  exit 1
fi

echo "1. A key (starter plan: 5,000 sessions/month), shown only once:"
KEY=$(curl -fsS -X POST "$BASE/v1/keys/generate" \
  -H "Content-Type: application/json" -d '{"customer_name": "Quick start"}' | field api_key)
echo "   ${KEY:0:11}... (kept in \$KEY for the next steps)"

NOW=$(date +%s)
echo
echo "2. Events for session $SESSION: a page view, a rage click, two payment errors:"
curl -fsS -X POST "$BASE/v1/sessions/$SESSION/events" \
  -H "X-Api-Key: $KEY" -H "Content-Type: application/json" \
  -d '{"events": [
        {"type": "page_view",  "url": "/checkout",         "ts": '"$NOW"'},
        {"type": "rage_click", "x": 340, "y": 210,         "ts": '"$((NOW + 1))"'},
        {"type": "error",      "message": "Payment failed", "ts": '"$((NOW + 2))"'},
        {"type": "error",      "message": "Payment failed", "ts": '"$((NOW + 3))"'}]}' | pretty

echo
echo "3. The mood, as your backend would read it:"
curl -fsS "$BASE/v1/sessions/$SESSION/mood" -H "X-Api-Key: $KEY" | pretty

echo
echo "4. What you did about it, and whether it helped:"
curl -fsS -X POST "$BASE/v1/sessions/$SESSION/feedback" \
  -H "X-Api-Key: $KEY" -H "Content-Type: application/json" \
  -d '{"action_taken": "show_live_chat", "was_helpful": true}' | pretty
