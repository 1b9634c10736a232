#!/usr/bin/env bash
# Seed 003's 21-step test flow, run against a running payport (default http://127.0.0.1:3003).
# Each step checks the answer it gets; the script stops at the first failed step.
#   PAYPORT=http://127.0.0.1:3003 scripts/seed003_flow.sh
set -euo pipefail
PAYPORT=${PAYPORT:-http://127.0.0.1:3003}
RUN=$(python3 -c 'import secrets; print(secrets.token_hex(4))')
USER_ID="user_flow_$RUN"
PASSED=0
BODY=$(mktemp)
trap 'rm -f "$BODY"' EXIT

# call METHOD PATH [JSON]: the body goes to $BODY, the status code to stdout.
call() {
  if [ $# -ge 3 ]; then
    curl -s -o "$BODY" -w '%{http_code}' -X "$1" "$PAYPORT$2" -H 'Content-Type: application/json' -d "$3"
  else
    curl -s -o "$BODY" -w '%{http_code}' -X "$1" "$PAYPORT$2"
  fi
}
# field EXPR: a Python expression over the last JSON answer `j`.
field() { python3 -c "import json, sys; j = json.load(open(sys.argv[1])); print($1)" "$BODY"; }
# step N NAME EXPECTED_STATUS STATUS CHECK: CHECK is a Python boolean over `j`.
step() {
  local ok
  ok=$(field "bool($5)")
  if [ "$4" != "$3" ] || [ "$ok" != "True" ]; then
    echo "FAIL $1 $2 (HTTP $4): $(head -c 400 "$BODY")"
    exit 1
  fi
  PASSED=$((PASSED + 1))
  echo "PASS $1 $2"
}

# 0. payport issues no tokens (the seed's gateway did); readiness stands in for it.
s=$(call GET /health/ready); step 0 "Readiness (no token needed)" 200 "$s" 'j["status"] == "ready"'
s=$(call GET /health); step 1 "Health check" 200 "$s" 'j["status"] == "healthy"'
s=$(call GET /info); step 2 "Service info" 200 "$s" 'j["service"] == "payport" and "version" in j'

PLAN="plan_pro_$RUN"
s=$(call POST /api/v1/plans "{\"plan_id\": \"$PLAN\", \"name\": \"Pro Plan\", \"tier\": \"pro\",
  \"price\": 29.99, \"billing_cycle\": \"monthly\"}")
step 3 "Create subscription plan" 201 "$s" 'j["price_minor"] == 2999'
s=$(call GET "/api/v1/plans/$PLAN"); step 4 "Get subscription plan" 200 "$s" 'j["name"] == "Pro Plan"'
s=$(call GET "/api/v1/plans?limit=100")
step 5 "List subscription plans" 200 "$s" "any(p['plan_id'] == '$PLAN' for p in j['data'])"

s=$(call POST /api/v1/subscriptions "{\"user_id\": \"$USER_ID\", \"plan_id\": \"$PLAN\",
  \"payment_method_id\": \"pm_card_visa\"}")
step 6 "Create subscription" 201 "$s" 'j["status"] == "active"'
SUB=$(field 'j["subscription_id"]')
s=$(call GET "/api/v1/subscriptions/$SUB"); step 7 "Get subscription" 200 "$s" "j['plan_id'] == '$PLAN'"
s=$(call PUT "/api/v1/subscriptions/$SUB" '{"quantity": 2}')
step 8 "Update subscription" 200 "$s" 'j["quantity"] == 2'


s=$(call POST "/api/v1/subscriptions/$SUB/cancel" '{"at_period_end": true, "reason": "flow test"}')
step 9 "Cancel subscription (at period end)" 200 "$s" 'j["cancel_at_period_end"] is True'

s=$(call POST /api/v1/payments/intent "{\"user_id\": \"$USER_ID\", \"amount\": 49.99,
  \"currency\": \"usd\", \"payment_method_id\": \"pm_card_visa\", \"description\": \"Credits\"}")
step 10 "Create payment intent" 201 "$s" 'j["status"] == "AUTHORIZED" and j["amount"] == 4999'
PAYMENT=$(field 'j["payment_id"]')
s=$(call POST "/api/v1/payments/$PAYMENT/confirm")
step 11 "Confirm payment" 200 "$s" 'j["status"] == "SUCCEEDED" and j["amount_captured"] == 4999'
s=$(call GET "/api/v1/payments/user/$USER_ID")
step 12 "Payment history" 200 "$s" "[p['payment_id'] for p in j['data']] == ['$PAYMENT']"

s=$(call POST /api/v1/invoices "{\"user_id\": \"$USER_ID\", \"lines\": [
  {\"description\": \"Onboarding workshop\", \"amount\": 150.00},
  {\"description\": \"Sales tax 8%\", \"kind\": \"tax\", \"amount\": 12.00}]}")
step 13 "Create invoice" 201 "$s" 'j["total_minor"] == 16200 and j["status"] == "open"'
INVOICE=$(field 'j["invoice_id"]')
NUMBER=$(field 'j["number"]')
s=$(call GET "/api/v1/invoices/$INVOICE")
step 14 "Get invoice" 200 "$s" "j['number'] == '$NUMBER' and len(j['lines']) == 2"
PDF_STATUS=$(curl -s -o /dev/null -w '%{http_code} %{content_type}' "$PAYPORT/api/v1/invoices/$INVOICE/pdf")
[ "$PDF_STATUS" = "200 application/pdf" ] || { echo "FAIL 14 invoice PDF: $PDF_STATUS"; exit 1; }

s=$(call POST /api/v1/refunds "{\"payment_id\": \"$PAYMENT\", \"amount\": 10.00,
  \"reason\": \"requested_by_customer\"}")
step 15 "Create refund" 201 "$s" 'j["status"] == "approved" and j["amount_minor"] == 1000'
REFUND=$(field 'j["refund_id"]')
s=$(call POST "/api/v1/refunds/$REFUND/process")
step 16 "Process refund" 200 "$s" 'j["status"] == "succeeded" and j["provider_refund_id"]'

s=$(call POST /api/v1/usage "{\"events\": [
  {\"event_id\": \"evt-$RUN-1\", \"subscription_id\": \"$SUB\", \"metric\": \"api_calls\", \"quantity\": 120},
  {\"event_id\": \"evt-$RUN-2\", \"subscription_id\": \"$SUB\", \"metric\": \"api_calls\", \"quantity\": 30}]}")
step 17 "Record usage (batch, idempotent by event_id)" 201 "$s" 'j["accepted"] == 2'
s=$(call GET /api/v1/stats/revenue)
step 18 "Statistics: revenue" 200 "$s" 'j["totals"]["usd"]["net_minor"] >= 4999 - 1000'
s=$(call GET /api/v1/stats/subscriptions)
step 19 "Statistics: subscriptions" 200 "$s" 'j["active"] >= 1 and j["recurring_revenue"]["usd"]["mrr_minor"] >= 5998'
s=$(call GET "/api/v1/subscriptions/user/$USER_ID")
step 20 "User subscriptions" 200 "$s" "[x['subscription_id'] for x in j['data']] == ['$SUB']"

echo "$PASSED/21 passed"
[ "$PASSED" -eq 21 ]
