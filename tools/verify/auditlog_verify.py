#!/usr/bin/env python3
"""An auditor's verifier for the audit log service's exports and archive, written apart
from the service: it imports nothing of it and depends only on PyPI's `cryptography`,
`rfc8785` and `pyarrow`. See README.md beside it.

    python auditlog_verify.py export DIR --keys keys.json
    python auditlog_verify.py archive ROOT --tenant T --keys keys.json

`keys.json` is the answer of `GET /v1/keys` (no token needed), saved. `DIR` holds a
downloaded export: its `manifest.json` and its files, under the names the manifest lists.
`ROOT` is the archive bucket: a local copy (a folder) or `s3://bucket` (pyarrow's S3
filesystem, with the usual AWS credentials; `?endpoint_override=...` for another endpoint).

Exit status 0 when everything holds; 1 with one line per problem otherwise. What was
checked (the export's request, the signed head) is printed on standard error. Files are
read as streams: memory stays bounded whatever their size.
"""
import argparse
import base64
import csv
import hashlib
import json
import os
import sys
from concurrent.futures import ProcessPoolExecutor
from datetime import datetime, timezone

import pyarrow.fs as pafs
import pyarrow.parquet as pq
import rfc8785
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

MANIFEST_LABEL = "audit-log/export-manifest/1"
CHECKPOINT_LABEL = "audit-log/archive-checkpoint/1"
ALGORITHM = "ECDSA_SHA_256"

# The archive's columns (contract section 4): where each sits in an event's JSON, and
# whether it is a time or JSON text. `received_at` and `hash` are the server's, not hashed.
COLUMNS = [
    ("tenant_id", ("tenant_id",)), ("id", ("id",)), ("occurred_at", ("occurred_at",)),
    ("received_at", None), ("action", ("action",)), ("outcome", ("outcome",)),
    ("actor_type", ("actor", "type")), ("actor_id", ("actor", "id")), ("actor_name", ("actor", "name")),
    ("actor_email", ("actor", "email")), ("resource_type", ("resource", "type")),
    ("resource_id", ("resource", "id")), ("resource_name", ("resource", "name")),
    ("resource_parent_type", ("resource", "parent", "type")), ("resource_parent_id", ("resource", "parent", "id")),
    ("resource_parent_name", ("resource", "parent", "name")), ("workspace_id", ("workspace", "id")),
    ("workspace_name", ("workspace", "name")), ("source_ip", ("source", "ip")),
    ("user_agent", ("source", "user_agent")), ("source_platform", ("source", "platform")),
    ("source_location", ("source", "location")), ("request_id", ("request_id",)),
    ("description", ("description",)), ("changes", ("changes",)), ("metadata", ("metadata",)), ("hash", None),
]
JSON_COLUMNS = {"changes", "metadata"}
TIME_COLUMNS = {"occurred_at", "received_at"}
# Rows decoded at once from a Parquet file: memory stays bounded whatever its size.
BATCH_ROWS = 1024
# Bytes hashed at once.
CHUNK = 1 << 20


def sha256_hex(data):
    return hashlib.sha256(data).hexdigest()


def file_digest(stream):
    """(bytes, hex SHA-256) of what the stream holds, read in chunks."""
    digest, size = hashlib.sha256(), 0
    while chunk := stream.read(CHUNK):
        digest.update(chunk)
        size += len(chunk)
    return size, digest.hexdigest()


def instant(text):
    """An RFC 3339 time as an aware datetime, or None when it is not one."""
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")) if isinstance(text, str) else None
    except ValueError:
        return None


# ---------------------------------------------------------------- keys and signatures


def load_keys(path):
    """The published keys by id; a key whose id is not the SHA-256 of its DER is refused."""
    with open(path, encoding="utf-8") as f:
        published = json.load(f)
    keys = {}
    for k in published.get("keys", []):
        key = serialization.load_pem_public_key(k["public_key_pem"].encode())
        der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        if sha256_hex(der) != k["key_id"] or not isinstance(key, ec.EllipticCurvePublicKey):
            raise SystemExit(f"{path}: key {k['key_id']} is not the key its id names")
        keys[k["key_id"]] = key
    return keys


def signed_message(document, label):
    """`{label}\\n{hex SHA-256 of the RFC 8785 form of the document without "signature"}`."""
    unsigned = {k: v for k, v in document.items() if k != "signature"}
    return f"{label}\n{sha256_hex(rfc8785.dumps(unsigned))}".encode()


def signature_problem(document, label, keys):
    """Why the document's signature does not hold, or None."""
    sig = document.get("signature")
    if not isinstance(sig, dict):
        return "not signed"
    if sig.get("algorithm") != ALGORITHM:
        return f"signed with {sig.get('algorithm')}, not {ALGORITHM}"
    key = keys.get(sig.get("key_id"))
    if key is None:
        return f"signed by key {sig.get('key_id')}, which is not a published key"
    try:
        key.verify(base64.b64decode(sig.get("value", "")), signed_message(document, label), ec.ECDSA(hashes.SHA256()))
    except (InvalidSignature, ValueError):
        return f"the signature does not verify with key {sig['key_id']}"
    return None


# ---------------------------------------------------------------- rows and their hashes


def hash_holds(event, claimed):
    """Whether the event hashes to the hash the service gave it: SHA-256 of its RFC 8785
    form, without the server's `received_at` and `hash`. Python's own `json` with sorted
    keys writes most events exactly as RFC 8785 does, at C speed: when those bytes hash to
    the claimed hash they are the very text the service hashed, and they read back as this
    event, so the row holds. Otherwise the RFC 8785 form decides."""
    document = {k: v for k, v in event.items() if k not in ("received_at", "hash")}
    fast = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    return sha256_hex(fast) == claimed or sha256_hex(rfc8785.dumps(document)) == claimed


def time_text(value):
    return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def event_of_row(row):
    """An archive-schema row back as the event's JSON."""
    event = {}
    for column, path in COLUMNS:
        value = row.get(column)
        if value is None or path is None:
            continue
        if column in TIME_COLUMNS:
            value = time_text(value)
        elif column in JSON_COLUMNS:
            value = json.loads(value)
        node = event
        for step in path[:-1]:
            node = node.setdefault(step, {})
        node[path[-1]] = value
    return event


def parquet_rows(opened):
    """(occurred_at text, id, event, claimed hash) for every row, batch by batch (`opened`:
    a path or a file opened for random access)."""
    for batch in pq.ParquetFile(opened).iter_batches(batch_size=BATCH_ROWS):
        for row in batch.to_pylist():
            event = event_of_row(row)
            yield event["occurred_at"], event["id"], event, row.get("hash")


def jsonl_rows(path):
    # Lines end at "\n" only: a string may hold U+2028 and the like unescaped.
    with open(path, "rb") as f:
        for line in f:
            if line.strip():
                event = json.loads(line)
                yield event.get("occurred_at"), event.get("id"), event, event.get("hash")


def csv_rows(path):
    with open(path, encoding="utf-8", newline="") as f:
        yield from csv_records(csv.DictReader(f))


def csv_records(reader):
    for record in reader:
        # CSV cells are guarded for spreadsheets (a leading ' before = + - @): the hash
        # cannot be recomputed from them, so only the count and the order are checked.
        yield record.get("occurred_at"), record.get("id"), None, None


# ---------------------------------------------------------------- an export


def check_rows(name, rows, problems, scope):
    """Counts the rows, checks every row's hash, tenant and time against the request (when
    the format has the whole event) and their order, newest first; returns (rows, first
    time, last time, first key, last key)."""
    count, first, last, first_key, previous = 0, None, None, None, None
    tenant, start, end = scope
    for at, row_id, event, claimed in rows:
        count += 1
        if event is not None and not hash_holds(event, claimed):
            problems.append(f"{name}: row {count} ({row_id}) does not hash to its hash: it was changed")
        if event is not None and event.get("tenant_id", tenant) != tenant:
            problems.append(f"{name}: row {count} ({row_id}) is of tenant {event.get('tenant_id')}, not {tenant}")
        when = instant(at)
        if when is None or start and when < start or end and when >= end:
            problems.append(f"{name}: row {count} ({row_id}) occurred at {at}, outside the range asked for")
        key = (at or "", row_id or "")
        if previous is not None and key >= previous:
            problems.append(f"{name}: row {count} ({row_id}) is out of order (rows are newest first)")
        previous = key
        first_key = first_key or key
        first = first or at
        last = at
    return count, first, last, first_key, previous


READERS = {"csv": csv_rows, "jsonl": jsonl_rows, "parquet": parquet_rows}


def check_file(job):
    """One listed file of an export, on its own (the files are checked side by side):
    (problems, rows, first time, last time, first key, last key), rows None when the file
    is missing or unreadable."""
    folder, entry, export_format, scope = job
    name = entry["name"]
    path = f"{folder}/{name}"
    problems = []
    try:
        with open(path, "rb") as f:
            size, digest = file_digest(f)
    except FileNotFoundError:
        return [f"{name}: missing"], None, None, None, None, None
    if size != entry["bytes"] or digest != entry["sha256"]:
        problems.append(f"{name}: its bytes are not the ones the manifest lists (a changed, swapped or cut file)")
    try:
        count, first, last, first_key, last_key = check_rows(name, READERS[export_format](path), problems, scope)
    except Exception as e:  # an unreadable file is a finding, not a crash
        return problems + [f"{name}: unreadable as {export_format}: {e}"], None, None, None, None, None
    if count != entry["rows"]:
        problems.append(f"{name}: {count} rows, the manifest lists {entry['rows']}")
    if (first, last) != (entry.get("first"), entry.get("last")):
        problems.append(f"{name}: first/last times {first}/{last}, the manifest lists {entry.get('first')}/{entry.get('last')}")
    return problems, count, first, last, first_key, last_key


def verify_export(folder, keys, allow_truncated=False):
    problems = []
    with open(f"{folder}/manifest.json", "rb") as f:
        manifest = json.load(f)
    why = signature_problem(manifest, MANIFEST_LABEL, keys)
    if why:
        problems.append(f"manifest.json: {why}")
    request = manifest.get("request", {})
    export_format = request.get("format")
    if export_format not in READERS:
        return problems + [f"manifest.json: unknown format {export_format!r}"]
    print(
        f"export {manifest.get('export_id')} of tenant {manifest.get('tenant_id')}: {export_format}, "
        f"from {request.get('from')} to {request.get('to')}, filters {json.dumps(request.get('filters'))}, "
        f"{manifest.get('rows')} rows, completed {manifest.get('completed_at')}",
        file=sys.stderr,
    )
    if manifest.get("truncated") and not allow_truncated:
        problems.append(
            "manifest.json: the export is truncated (the operator's row guard): it holds only the most "
            "recent rows of the range (--allow-truncated to check it anyway)"
        )
    scope = (manifest.get("tenant_id"), instant(request.get("from")), instant(request.get("to")))
    files = manifest.get("files", [])
    listed = {f["name"] for f in files}
    jobs = [(folder, entry, export_format, scope) for entry in files]
    if len(jobs) > 1:
        with ProcessPoolExecutor(max_workers=min(len(jobs), os.cpu_count() or 1)) as pool:
            checked = list(pool.map(check_file, jobs))
    else:
        checked = [check_file(job) for job in jobs]
    total, previous = 0, None
    for entry, (found, count, _, _, first_key, last_key) in zip(files, checked):
        problems.extend(found)
        if count is None:
            continue
        total += count
        if previous is not None and first_key is not None and first_key >= previous:
            problems.append(f"{entry['name']}: row 1 is out of order (rows are newest first, across files)")
        previous = last_key or previous
    if total != manifest.get("rows"):
        problems.append(f"manifest.json: {total} rows in the files, the manifest says {manifest.get('rows')}")
    prefix = f"audit-export-{manifest.get('export_id')}-"
    for name in sorted(os.listdir(folder)):
        if name.startswith(prefix) and name not in listed:
            problems.append(f"{name}: a file of this export that its manifest does not list")
    return problems


# ---------------------------------------------------------------- the archive


def open_root(root):
    if "://" in root:
        fs, path = pafs.FileSystem.from_uri(root)
        return fs, path.rstrip("/")
    return pafs.LocalFileSystem(), root.rstrip("/")


def read(fs, path):
    with fs.open_input_stream(path) as f:
        return f.read()


def listing(fs, path):
    try:
        infos = fs.get_file_info(pafs.FileSelector(path, recursive=False))
    except FileNotFoundError:
        return []
    return sorted(i.base_name for i in infos if i.type == pafs.FileType.File)


def verify_archive(root, tenant, keys):
    """The tenant's chain of manifest revisions up to its latest validly signed checkpoint,
    and every part (bytes, rows, each row's hash) of each day's revision as of it."""
    problems = []
    fs, base = open_root(root)
    manifests = f"{base}/manifests/tenant={tenant}"
    signed = None
    for name in reversed(listing(fs, f"{manifests}/checkpoints")):
        checkpoint = json.loads(read(fs, f"{manifests}/checkpoints/{name}"))
        why = signature_problem(checkpoint, CHECKPOINT_LABEL, keys)
        if why or checkpoint.get("tenant_id") != tenant or f"{checkpoint.get('seq'):010}.json" != name:
            problems.append(f"checkpoints/{name}: {why or 'names another tenant or seq'}")
            continue
        signed = checkpoint
        break
    if signed is None:
        return problems + ["no validly signed checkpoint: nothing to check the chain against"]
    head = signed["seq"]
    print(f"tenant {tenant}: chain checked up to seq {head}, signed at {signed.get('created_at')}", file=sys.stderr)
    for name in listing(fs, f"{manifests}/revisions"):
        seq = name.removesuffix(".json")
        if seq.isdigit() and int(seq) > head:
            problems.append(
                f"revision {int(seq)}: past the newest signed checkpoint (seq {head}): unsigned "
                "(an archive run in flight: check again in a minute; else written without the key)"
            )
    revisions = {}
    for seq in range(1, head + 1):
        try:
            raw = read(fs, f"{manifests}/revisions/{seq:010}.json")
        except FileNotFoundError:
            problems.append(f"revision {seq}: missing")
            continue
        revisions[seq] = (sha256_hex(raw), json.loads(raw))
    for seq, (_, m) in revisions.items():
        prev = revisions.get(seq - 1)
        if m.get("seq") != seq or m.get("tenant_id") != tenant:
            problems.append(f"revision {seq}: holds seq {m.get('seq')} of tenant {m.get('tenant_id')}")
        if seq == 1 and m.get("prev") is not None or seq > 1 and (prev is None or m.get("prev") != prev[0]):
            problems.append(f"revision {seq}: prev does not match the hash of revision {seq - 1}")
    if revisions.get(head, (None,))[0] != signed["head"]:
        problems.append(f"revision {head}: does not hash to the head checkpoint {head:010}.json signs (rewritten)")
    latest = {}
    for seq, (digest, m) in sorted(revisions.items()):
        latest[m["date"]] = (digest, m)
    # What exports and queries read: each day's current manifest, the day's latest revision.
    for name in listing(fs, manifests):
        date = name.removeprefix("date=").removesuffix(".json")
        if name == f"date={date}.json" and date not in latest:
            problems.append(f"{name}: a day manifest no signed revision names")
    rows = 0
    for date, (digest, m) in sorted(latest.items()):
        try:
            current = read(fs, f"{manifests}/date={date}.json")
        except FileNotFoundError:
            current = None
        if current is None or sha256_hex(current) != digest:
            problems.append(f"date={date}.json: not the day's latest signed revision (seq {m.get('seq')})")
        for part in m.get("parts", []):
            path = f"{base}/events/tenant={tenant}/date={date}/{part['name']}"
            try:
                with fs.open_input_stream(path) as stream:
                    size, part_digest = file_digest(stream)
            except FileNotFoundError:
                problems.append(f"{date}/{part['name']}: missing")
                continue
            if size != part["bytes"] or part_digest != part["sha256"]:
                problems.append(f"{date}/{part['name']}: its bytes are not the ones its manifest lists")
            count = 0
            with fs.open_input_file(path) as opened:
                for _, row_id, event, claimed in parquet_rows(opened):
                    count += 1
                    if not hash_holds(event, claimed):
                        problems.append(f"{date}/{part['name']}: row {row_id} does not hash to its hash")
            rows += count
            if count != part["rows"]:
                problems.append(f"{date}/{part['name']}: {count} rows, its manifest lists {part['rows']}")
    return problems


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="what", required=True)
    e = sub.add_parser("export", help="a downloaded export: manifest.json and its files")
    e.add_argument("folder")
    e.add_argument("--keys", required=True, help="a saved GET /v1/keys answer")
    e.add_argument("--allow-truncated", action="store_true", help="check an export the row guard cut")
    a = sub.add_parser("archive", help="a tenant's archive, up to its latest signed checkpoint")
    a.add_argument("root", help="a folder holding the bucket's objects, or s3://bucket")
    a.add_argument("--tenant", required=True)
    a.add_argument("--keys", required=True)
    args = parser.parse_args(argv)
    keys = load_keys(args.keys)
    if args.what == "export":
        problems = verify_export(args.folder, keys, args.allow_truncated)
    else:
        problems = verify_archive(args.root, args.tenant, keys)
    for p in problems:
        print(p)
    print("OK" if not problems else f"{len(problems)} problem(s)", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
