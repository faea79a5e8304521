#!/usr/bin/env bash
# Create .venv, install tfaudit, and run it on the quickstart config (no cloud account needed):
# tfaudit apply, a second apply that changes something, the ledger summary, and tfaudit verify.
EXTRAS=""
source "$(dirname "$0")/_venv.sh"

if ! command -v terraform >/dev/null 2>&1 && ! command -v tofu >/dev/null 2>&1; then
  echo "demo: terraform (or tofu) is not on PATH; install it, then run ./scripts/demo.sh again" >&2
  exit 64
fi

DEMO="$ROOT/.demo"
rm -rf "$DEMO"
mkdir -p "$DEMO"
cp -R "$ROOT/fixtures/quickstart" "$DEMO/quickstart"
export TF_IN_AUTOMATION=1 CHECKPOINT_DISABLE=1
# A CLI config that points nowhere makes terraform warn on every call; use an empty one instead.
if [ -n "${TF_CLI_CONFIG_FILE:-}" ] && [ ! -f "$TF_CLI_CONFIG_FILE" ]; then
  : >"$DEMO/terraformrc"
  export TF_CLI_CONFIG_FILE="$DEMO/terraformrc"
fi
export TFAUDIT_SIGNING_KEY="$DEMO/signing-key"
LEDGER="$DEMO/quickstart/.tfaudit/ledger.jsonl"

cd "$DEMO/quickstart"
echo "==> tfaudit keygen" >&2
tfaudit keygen "$TFAUDIT_SIGNING_KEY"
echo "==> terraform init" >&2
terraform init -input=false >/dev/null
echo "==> tfaudit apply -auto-approve" >&2
tfaudit apply -auto-approve
echo "==> tfaudit apply -auto-approve -var release=2   (an update, recorded too)" >&2
tfaudit apply -auto-approve -var release=2
echo >&2
echo "==> the ledger: $LEDGER" >&2
tfaudit log "$LEDGER"
echo >&2
echo "==> tfaudit verify" >&2
tfaudit verify "$LEDGER" --public-key "$TFAUDIT_SIGNING_KEY.pub"
