"""tools/verify, the auditor's verifier that is not our code, against real exports and a
real archive of the local runner (`audit-local` on the private stack, its key in moto's
KMS): a whole download verifies, in every format; each tampering the issue lists is
refused; and a chain rewritten in the bucket and the table together is caught by the
signed checkpoint (by the verifier, and by `auditlog verify`)."""
import base64
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
import uuid
from datetime import datetime, timedelta, timezone

import boto3
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tests"))
sys.path.insert(0, os.path.join(ROOT, "tools", "verify"))
import auditlog_verify as verifier  # noqa: E402
import local_app  # noqa: E402

VERIFY = os.path.join(ROOT, "tools", "verify", "auditlog_verify.py")


def call(base, method, path, tok=None, body=None):
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {tok}"} if tok else {})}
    req = urllib.request.Request(base + path, method=method, data=data, headers=headers)
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read() or b"null")


def fetch(url):
    with urllib.request.urlopen(url, timeout=30) as r:
        return r.read()


def events(n, days_ago):
    at = datetime.now(timezone.utc) - timedelta(days=days_ago)
    return [{"id": f"v-{days_ago}-{i:04}", "occurred_at": (at - timedelta(seconds=i)).isoformat().replace("+00:00", "Z"),
             "action": "file.upload", "actor": {"type": "member", "id": f"u-{i % 3}", "name": "Zoë"},
             "resource": {"type": "file", "id": f"f-{i}"}, "metadata": {"n": i, "x": 1.5, "nested": [True, None]},
             "description": "=SUM(A1)" if i == 3 else None} for i in range(n)]


def download(base, tenant, fmt, folder):
    """Asks for an export, waits for it (a generous bound), and saves what an auditor
    downloads: every file under its name, the manifest, and the published keys."""
    tok = local_app.token(tenant, "audit:export", "auditor")
    job = call(base, "POST", "/v1/exports", tok, {"format": fmt, "from": "2000-01-01T00:00:00Z"})
    give_up = time.monotonic() + 180
    while job["status"] not in ("succeeded", "failed") and time.monotonic() < give_up:
        time.sleep(0.5)
        job = call(base, "GET", f"/v1/exports/{job['id']}", tok)
    assert job["status"] == "succeeded", job
    os.makedirs(folder)
    for f in job["files"]:
        with open(os.path.join(folder, f["name"]), "wb") as out:
            out.write(fetch(f["download_url"]))
    with open(os.path.join(folder, "manifest.json"), "wb") as out:
        out.write(fetch(job["manifest_url"]))
    return job


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    """Exports in three formats of 130 events, in files of at most 40 rows, and the keys."""
    tmp = tmp_path_factory.mktemp("verifier")
    tenant = f"verify-{uuid.uuid4().hex[:12]}"
    with local_app.audit_local("verifier-audit-local.log", AUDIT_EXPORT_FILE_ROWS="40") as base:
        write = local_app.token(tenant, "audit:write", "verifier")
        for batch in (events(100, 1), events(30, 3)):
            call(base, "POST", "/v1/events", write, {"events": [{k: v for k, v in e.items() if v is not None}
                                                                 for e in batch]})
        jobs = {fmt: download(base, tenant, fmt, str(tmp / fmt)) for fmt in ("jsonl", "csv", "parquet")}
        keys = tmp / "keys.json"
        keys.write_bytes(json.dumps(call(base, "GET", "/v1/keys")).encode())
    return {"tmp": tmp, "jobs": jobs, "keys": str(keys), "tenant": tenant}


def copy(stack, fmt, name):
    to = stack["tmp"] / f"{fmt}-{name}"
    shutil.copytree(stack["tmp"] / fmt, to)
    return to


def files(folder):
    manifest = json.loads((folder / "manifest.json").read_bytes())
    return [folder / f["name"] for f in manifest["files"]]


def problems(folder, keys):
    return verifier.verify_export(str(folder), verifier.load_keys(keys))


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "parquet"])
def test_a_whole_download_verifies_from_the_command_line(stack, fmt):
    folder = stack["tmp"] / fmt
    assert len(files(folder)) == 4, "131 rows (the export's own event too) in files of 40"
    run = subprocess.run([sys.executable, VERIFY, "export", str(folder), "--keys", stack["keys"]],
                         capture_output=True, text=True, check=False)
    assert (run.returncode, run.stdout) == (0, ""), run.stdout + run.stderr


def test_a_truncated_export_is_refused_unless_the_auditor_allows_it(stack, tmp_path):
    with local_app.audit_local("verifier-guard-audit-local.log", AUDIT_EXPORT_MAX_ROWS="50") as base:
        job = download(base, stack["tenant"], "jsonl", str(tmp_path / "cut"))
    assert (job["truncated"], job["rows"]) == (True, 50), job
    args = [sys.executable, VERIFY, "export", str(tmp_path / "cut"), "--keys", stack["keys"]]
    run = subprocess.run(args, capture_output=True, text=True, check=False)
    assert run.returncode == 1 and "truncated" in run.stdout, run.stdout + run.stderr
    run = subprocess.run([*args, "--allow-truncated"], capture_output=True, text=True, check=False)
    assert (run.returncode, run.stdout) == (0, ""), run.stdout + run.stderr


def rewrite_lines(path, change):
    lines = path.read_bytes().split(b"\n")
    path.write_bytes(b"\n".join(change(lines)))


TAMPERINGS = {
    "a changed byte": lambda fs: fs[1].write_bytes(fs[1].read_bytes().replace(b"file.upload", b"file.uploaD", 1)),
    "a removed row": lambda fs: rewrite_lines(fs[1], lambda ls: ls[:2] + ls[3:]),
    "an added row": lambda fs: rewrite_lines(fs[1], lambda ls: ls[:2] + [ls[2]] + ls[2:]),
    "reordered rows": lambda fs: rewrite_lines(fs[1], lambda ls: ls[:2] + [ls[3], ls[2]] + ls[4:]),
    "swapped parts": lambda fs: (lambda a, b: (fs[0].write_bytes(b), fs[1].write_bytes(a)))(
        fs[0].read_bytes(), fs[1].read_bytes()),
    "a missing part": lambda fs: fs[2].unlink(),
    "an extra part": lambda fs: shutil.copy(fs[0], str(fs[0]).replace("-000.", "-999.")),
}


@pytest.mark.parametrize("tampering", TAMPERINGS)
def test_each_tampering_of_the_files_is_refused(stack, tampering):
    folder = copy(stack, "jsonl", tampering.replace(" ", "-"))
    TAMPERINGS[tampering](files(folder))
    found = problems(folder, stack["keys"])
    assert found, f"{tampering} was not noticed"


def resign(manifest, key, key_id):
    doc = {k: v for k, v in manifest.items() if k != "signature"}
    der = key.sign(verifier.signed_message(doc, verifier.MANIFEST_LABEL), ec.ECDSA(hashes.SHA256()))
    doc["signature"] = {"key_id": key_id, "algorithm": "ECDSA_SHA_256", "value": base64.b64encode(der).decode()}
    return doc


def test_a_manifest_signed_by_another_key_or_changed_after_signing_is_refused(stack):
    other = ec.generate_private_key(ec.SECP256R1())
    other_id = hashlib.sha256(other.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)).hexdigest()
    published = json.loads(open(stack["keys"], encoding="utf-8").read())["keys"][0]["key_id"]
    for name, change in [
        ("own-key", lambda m: resign(dict(m, rows=m["rows"]), other, other_id)),
        ("claims-ours", lambda m: resign(m, other, published)),
        ("edited", lambda m: dict(m, truncated=True)),
        ("unsigned", lambda m: {k: v for k, v in m.items() if k != "signature"}),
    ]:
        folder = copy(stack, "jsonl", f"manifest-{name}")
        path = folder / "manifest.json"
        path.write_bytes(json.dumps(change(json.loads(path.read_bytes()))).encode())
        found = problems(folder, stack["keys"])
        assert any(p.startswith("manifest.json:") for p in found), (name, found)
    # A keys file whose key is not the one its id names is refused outright.
    forged = stack["tmp"] / "forged-keys.json"
    keys = json.loads(open(stack["keys"], encoding="utf-8").read())
    keys["keys"][0]["key_id"] = other_id
    forged.write_text(json.dumps(keys))
    with pytest.raises(SystemExit):
        verifier.load_keys(str(forged))


def test_a_changed_parquet_row_is_refused(stack):
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder = copy(stack, "parquet", "row")
    path = files(folder)[0]
    table = pq.read_table(path)
    actions = table.column("action").to_pylist()
    actions[0] = "file.delete"
    pq.write_table(table.set_column(table.schema.get_field_index("action"), "action", pa.array(actions)), path)
    found = problems(folder, stack["keys"])
    assert any("does not hash to its hash" in p for p in found), found


def test_the_archive_verifies_to_its_signed_checkpoint_and_a_rewrite_of_bucket_and_table_is_caught(stack, auditlog):
    tenant = f"chain-{uuid.uuid4().hex[:12]}"
    with local_app.audit_local("verifier-archive-audit-local.log") as base:
        write = local_app.token(tenant, "audit:write", "verifier")
        call(base, "POST", "/v1/events", write, {"events": [{k: v for k, v in e.items() if v is not None}
                                                             for e in events(50, 200)]})
    auditlog("archive", "--tenant", tenant)
    root = os.path.join(os.environ["AUDIT_TEST_S3_DIR"], os.environ["AUDIT_ARCHIVE_BUCKET"])
    keys = verifier.load_keys(stack["keys"])
    assert verifier.verify_archive(root, tenant, keys) == []
    assert auditlog("verify", "--tenant", tenant, check=False).returncode == 0
    manifests = os.path.join(root, "manifests", f"tenant={tenant}")
    revisions = os.path.join(manifests, "revisions")
    path = os.path.join(revisions, sorted(os.listdir(revisions))[-1])
    original = open(path, "rb").read()
    manifest = json.loads(original)
    day = os.path.join(manifests, f"date={manifest['date']}.json")

    # The bucket alone: a day's current manifest (what exports and queries read) that is
    # not its latest signed revision, and a revision past the newest checkpoint.
    with open(day, "wb") as f:
        f.write(original + b" ")
    assert any("not the day's latest signed revision" in p for p in verifier.verify_archive(root, tenant, keys))
    with open(day, "wb") as f:
        f.write(original)
    beyond = os.path.join(revisions, f"{manifest['seq'] + 1:010}.json")
    shutil.copy(path, beyond)
    assert any("past the newest signed checkpoint" in p for p in verifier.verify_archive(root, tenant, keys))
    os.remove(beyond)

    # Whoever can write the bucket and the table rewrites the chain consistently: a
    # revision changed, the registry's head moved to its new hash, the head's checkpoint
    # removed.
    manifest["created_at"] = "2020-01-01T00:00:00.000000Z"
    rewritten = json.dumps(manifest, indent=2).encode() + b"\n"
    for target in (path, day):
        with open(target, "wb") as f:
            f.write(rewritten)
    os.remove(os.path.join(manifests, "checkpoints", f"{manifest['seq']:010}.json"))
    table = boto3.resource("dynamodb").Table(os.environ["AUDIT_TABLE"])
    table.update_item(Key={"pk": "TENANTS", "sk": tenant}, UpdateExpression="SET archive_head = :h",
                      ExpressionAttributeValues={":h": hashlib.sha256(rewritten).hexdigest()})
    # The next archive run must not sign the forged head: it does not descend from what
    # was signed before.
    run = auditlog("archive", "--tenant", tenant, check=False)
    assert run.returncode == 1 and "signed" in run.stdout, run.stdout + run.stderr
    assert not os.path.exists(os.path.join(manifests, "checkpoints", f"{manifest['seq']:010}.json"))
    found = verifier.verify_archive(root, tenant, keys)
    assert any("checkpoint" in p or "signed" in p for p in found), found
    run = auditlog("verify", "--tenant", tenant, check=False)
    assert run.returncode == 1 and "checkpoint" in run.stdout, run.stdout + run.stderr


def test_a_parquet_export_is_read_by_duckdb_and_pyarrow_with_the_archive_schema(stack):
    import duckdb
    import pyarrow.parquet as pq

    from test_convert import COLUMNS

    paths = [str(p) for p in files(stack["tmp"] / "parquet")]
    assert all(pq.read_schema(p).names == COLUMNS for p in paths)
    rows = duckdb.connect().execute(f"SELECT count(*), count(DISTINCT id) FROM read_parquet({paths})").fetchone()
    # The 130 events and the three exports' own events (the parquet export ran last).
    assert rows == (133, 133)
