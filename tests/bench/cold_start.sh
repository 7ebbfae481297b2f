#!/usr/bin/env bash
# Cold starts of every function's Lambda bootstrap, as built for AWS (infra/aws/build, the
# release profile, cargo-lambda), against a Lambda Runtime API emulator
# (tests/bench/cold_start.py) and the local stack, beside a minimal lambda_runtime
# function built the same way. Secrets are read by ARN at init, as deployed.
#
# usage: tests/bench/cold_start.sh [ROUNDS]   (default 11)
#   The bootstraps must run here, so they are this machine's release build of the same
#   binaries (the profile infra/aws/build uses, linked by the host's linker rather than
#   zig); the arm64 artifacts' sizes come from `infra/aws/build`.
set -euo pipefail
# shellcheck source=infra/local/lib.sh
source "$(dirname "$0")/../../infra/local/lib.sh"
cd "$ROOT"
bench_profile
ROUNDS=${1:-11}
ensure_tools
cargo build --profile "$PROFILE" --quiet -p ingest -p query -p export -p archive -p minimal-lambda
cargo build --quiet -p audit-cli --bin auditlog
STATE=$(mktemp -d "$LOCAL/bench.XXXXXX")
trap 'stop_stack "$STATE"; rm -rf "$STATE"' EXIT
start_stack "$STATE"
# shellcheck disable=SC1091
source "$STATE/env"
AUDIT_JWT_SECRET_ARN=$("$VENV/bin/python" -c '
import boto3, sys
print(boto3.client("secretsmanager").create_secret(Name="audit/jwt", SecretString=sys.argv[1])["ARN"])' "$AUDIT_JWT_SECRET")
export AUDIT_JWT_SECRET_ARN
# The token command reads the secret itself; the bootstraps only get its ARN.
token() { AUDIT_JWT_SECRET=$SECRET target/debug/auditlog token "$@"; }
SECRET=$AUDIT_JWT_SECRET
unset AUDIT_JWT_SECRET
export SECRET
export -f token
"$VENV/bin/python" tests/bench/cold_start.py "$BIN" "$ROUNDS" bash -c 'token "$@"' token
