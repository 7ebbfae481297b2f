"""`auditlog convert` JSON lines -> Parquet, read back by DuckDB and pyarrow."""
import hashlib
import ipaddress
import json
from datetime import timezone, datetime

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import rfc8785

COLUMNS = ["tenant_id", "id", "occurred_at", "received_at", "action", "outcome", "actor_type", "actor_id",
           "actor_name", "actor_email", "resource_type", "resource_id", "resource_name", "resource_parent_type",
           "resource_parent_id", "resource_parent_name", "workspace_id", "workspace_name", "source_ip", "user_agent",
           "source_platform", "source_location", "request_id", "description", "changes", "metadata", "hash"]

TRICKY = [
    {"tenant_id": "tenant-x", "id": "tricky-1", "occurred_at": "2026-11-01T10:00:00.5+02:00", "action": "file.upload",
     "actor": {"type": "member", "id": "u,1", "name": "Zoë \"Q\" O'Neil", "email": "ZOE@example.com"},
     "resource": {"type": "file", "id": "f-1", "name": "line1\nline2", "parent": {"type": "folder", "id": "d-1"}},
     "source": {"ip": "2001:DB8::1", "user_agent": "=cmd|' /C calc'!A0", "platform": "web", "location": "Zürich"},
     "description": "+1, -1, @sum", "changes": [{"field": "size", "old": None, "new": 12}],
     "metadata": {"emoji": "😀", "nested": {"a": [1, 2, {"b": None}]}}},
    {"tenant_id": "tenant-x", "id": "tricky-2", "occurred_at": "2026-11-01T08:00:00.5Z", "action": "auth.login",
     "outcome": "failure", "actor": {"type": "api_key", "id": "k-1"}},
]


def stored_form(event):
    """The event as the contract says it is stored and hashed: `outcome` defaulted,
    `occurred_at` in UTC with microseconds, the source IP in its normal form."""
    e = dict(event)
    e.setdefault("outcome", "success")
    at = datetime.fromisoformat(e["occurred_at"].replace("Z", "+00:00")).astimezone(timezone.utc)
    e["occurred_at"] = at.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    if "ip" in e.get("source", {}):
        e["source"] = dict(e["source"], ip=ipaddress.ip_address(e["source"]["ip"]).compressed)
    return e


def write_input(tmp_path, gen_events, n=3000):
    lines = gen_events(n, "--tenants", "4", "--seed", "21").splitlines()
    lines += [json.dumps(e) for e in TRICKY]
    path = tmp_path / "in.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path, [json.loads(l) for l in lines]


def test_duckdb_and_pyarrow_read_every_event_back(tmp_path, auditlog, gen_events):
    src, events = write_input(tmp_path, gen_events)
    out = tmp_path / "out.parquet"
    auditlog("convert", src, out)

    table = pq.read_table(out)
    assert table.schema.names == COLUMNS
    assert table.schema.field("occurred_at").type == pa.timestamp("us", tz="UTC")
    assert table.num_rows == len(events)
    meta = pq.ParquetFile(out).metadata
    assert meta.row_group(0).column(0).compression == "ZSTD"

    con = duckdb.connect()
    rows = con.execute(f"""
        SELECT id, tenant_id, strftime(occurred_at, '%Y-%m-%dT%H:%M:%S.%fZ') AS t, action, outcome, actor_id, actor_email,
               resource_name, resource_parent_id, source_ip, user_agent, description, changes, metadata, hash
        FROM read_parquet('{out}')""").fetchall()
    assert [(r[2], r[0]) for r in rows] == sorted((r[2], r[0]) for r in rows), "rows sorted by occurred_at, id"
    by_id = {r[0]: r for r in rows}
    assert len(by_id) == len(events)
    for e in events:
        r = by_id[e["id"]]
        assert r[1] == e["tenant_id"] and r[3] == e["action"] and r[5] == e["actor"]["id"]
        assert r[6] == e["actor"].get("email")
        assert r[11] == e.get("description")
        assert (json.loads(r[13]) if r[13] else None) == e.get("metadata")
        if "changes" in e:
            assert json.loads(r[12]) == e["changes"]

    t1 = by_id["tricky-1"]
    assert t1[2] == "2026-11-01T08:00:00.500000Z"
    assert t1[7] == "line1\nline2" and t1[8] == "d-1" and t1[9] == "2001:db8::1"
    assert json.loads(t1[13]) == TRICKY[0]["metadata"]
    assert by_id["tricky-2"][4] == "failure"


def test_the_hash_is_the_sha256_of_the_rfc8785_event(tmp_path, auditlog, gen_events):
    src, events = write_input(tmp_path, gen_events, n=200)
    out = tmp_path / "out.parquet"
    auditlog("convert", src, out)
    hashes = dict(duckdb.connect().execute(f"SELECT id, hash FROM read_parquet('{out}')").fetchall())
    assert len(events) == 202
    for e in events:  # RFC 8785 by the rfc8785 package, not by the service's own writer
        assert hashes[e["id"]] == hashlib.sha256(rfc8785.dumps(stored_form(e))).hexdigest(), e["id"]


def test_an_invalid_line_fails_the_whole_conversion_with_its_number(tmp_path, auditlog):
    src = tmp_path / "bad.jsonl"
    good = json.dumps(TRICKY[1])
    src.write_text(good.replace("tricky-2", "g-1") + "\n" + json.dumps({"tenant_id": "t", "id": "b", "action": "Bad",
                   "actor": {"type": "member", "id": "u"}}) + "\n")
    r = auditlog("convert", src, tmp_path / "out.parquet", check=False)
    assert r.returncode != 0 and "line 2" in r.stderr and "invalid_format" in r.stderr


def test_repeats_are_stored_once_and_conflicts_refused(tmp_path, auditlog):
    same = json.dumps(TRICKY[1])
    src = tmp_path / "dup.jsonl"
    src.write_text(f"{same}\n{same}\n")
    out = tmp_path / "out.parquet"
    auditlog("convert", src, out)
    assert pq.read_table(out).num_rows == 1
    other = dict(TRICKY[1], action="auth.logout")
    src.write_text(f"{same}\n{json.dumps(other)}\n")
    r = auditlog("convert", src, out, check=False)
    assert r.returncode != 0 and "different content" in r.stderr


def test_a_claimed_hash_must_match(tmp_path, auditlog):
    src = tmp_path / "h.jsonl"
    src.write_text(json.dumps(dict(TRICKY[1], hash="0" * 64)) + "\n")
    r = auditlog("convert", src, tmp_path / "out.parquet", check=False)
    assert r.returncode != 0 and "does not match" in r.stderr
