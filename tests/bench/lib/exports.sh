# Shared by the export benchmarks (sourced): asking for an export and timing it, and
# timing the auditor's verifier over a download. They expect AUDIT_PORT, VENV, WORK, token
# (an audit:export token) and from (the range's start).

# export_job FORMAT [LABEL]: asks for an export of every row since $from, waits for it,
# and prints its rows, parts, files, time and rows/s under LABEL (FORMAT by default);
# leaves the job in $WORK/FORMAT.job.json.
export_job() {
  local format=$1 label=${2:-$1} start end id job status rows
  start=$(date +%s.%N)
  id=$(curl -fsS -X POST "http://127.0.0.1:$AUDIT_PORT/v1/exports" -H "authorization: Bearer $token" \
    -d "{\"from\": \"$from\", \"format\": \"$format\"}" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
  while :; do
    job=$(curl -fsS "http://127.0.0.1:$AUDIT_PORT/v1/exports/$id" -H "authorization: Bearer $token")
    status=$(echo "$job" | python3 -c 'import json,sys; print(json.load(sys.stdin)["status"])')
    [ "$status" = queued ] || [ "$status" = running ] || break
    sleep 0.5
  done
  end=$(date +%s.%N)
  echo "$job" >"$WORK/$format.job.json"
  echo "$job" | python3 -c 'import json,sys; j=json.load(sys.stdin); print(f"export job ({sys.argv[1]}):", j["status"], j["rows"], "rows,", j["bytes"], "bytes,", (j.get("progress") or {}).get("parts"), "parts,", len(j.get("files") or []), "files, truncated", j["truncated"], j["error"] or "")' "$label"
  rows=$(echo "$job" | python3 -c 'import json,sys; print(json.load(sys.stdin)["rows"])')
  echo "export ($label): $rows rows in $(python3 -c "print(round($end - $start, 1))") s ($(python3 -c "print(round($rows / ($end - $start)))") rows/s)"
}

# verify_download FORMAT: downloads the export left in $WORK/FORMAT.job.json (every file
# and the manifest, as an auditor would, with the published keys) and times tools/verify
# over it.
verify_download() {
  local format=$1 vstart
  log "the auditor's verifier (tools/verify) over the $format export, as downloaded"
  rm -rf "$WORK/download"
  python3 - "$WORK/$format.job.json" "$WORK/download" "http://127.0.0.1:$AUDIT_PORT/v1/keys" <<'PY'
import json, os, sys, urllib.request
job, folder, keys = json.load(open(sys.argv[1])), sys.argv[2], sys.argv[3]
os.makedirs(folder, exist_ok=True)
for f in job["files"]:
    urllib.request.urlretrieve(f["download_url"], os.path.join(folder, f["name"]))
urllib.request.urlretrieve(job["manifest_url"], os.path.join(folder, "manifest.json"))
urllib.request.urlretrieve(keys, os.path.join(folder, "..", "keys.json"))
PY
  vstart=$(date +%s.%N)
  "$VENV/bin/python" tools/verify/auditlog_verify.py export "$WORK/download" --keys "$WORK/keys.json"
  echo "verifier: $(python3 -c "print(round($(date +%s.%N) - $vstart, 1))") s over the $format export"
  rm -rf "$WORK/download"
}

# pad_events FILE: when PAD_KIB is set, makes each event of FILE (JSON lines) about
# PAD_KIB KiB by a `metadata.padding` of text that does not compress (seeded, so runs
# compare), for runs whose rows are as large as the service accepts (64 KiB at most).
pad_events() {
  [ -n "${PAD_KIB:-}" ] || return 0
  python3 - "$1" "$PAD_KIB" <<'PY'
import base64, json, os, random, sys
path, kib = sys.argv[1], int(sys.argv[2])
r = random.Random(kib)
with open(path) as src, open(path + ".padded", "w") as out:
    for line in src:
        e = json.loads(line)
        room = kib * 1024 - len(line) - 64
        e.setdefault("metadata", {})["padding"] = base64.b64encode(r.randbytes(room * 3 // 4)).decode()[:room]
        out.write(json.dumps(e, separators=(",", ":")) + "\n")
os.replace(path + ".padded", path)
PY
}
