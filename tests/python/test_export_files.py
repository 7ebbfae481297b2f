"""`auditlog convert` archive Parquet -> export CSV / JSON lines, read back by Python's
csv module and json, and the Glue table of template.yaml against the Parquet we write."""
import csv
import json
import pathlib

import pyarrow.parquet as pq
import yaml

from test_convert import COLUMNS, TRICKY, write_input

ROOT = pathlib.Path(__file__).resolve().parents[2]
CSV_COLUMNS = ["id", "occurred_at", "action", "outcome", "actor_type", "actor_id", "actor_name", "actor_email",
               "resource_type", "resource_id", "resource_name", "workspace_id", "workspace_name", "source_ip",
               "user_agent", "request_id", "description", "changes", "metadata"]


def guarded(v):
    if v is None:
        return ""
    return "'" + v if v[:1] in ("=", "+", "-", "@", "\t", "\r") else v


def parquet_rows(path):
    rows = pq.read_table(path).to_pylist()
    for r in rows:
        r["occurred_at"] = r["occurred_at"].strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    # Newest first, as exports are.
    return sorted(rows, key=lambda r: (r["occurred_at"], r["id"]), reverse=True)


def test_csv_export_is_rfc4180_newest_first_and_formula_safe(tmp_path, auditlog, gen_events):
    src, events = write_input(tmp_path, gen_events, n=2000)
    part = tmp_path / "part.parquet"
    auditlog("convert", src, part)
    out = tmp_path / "out.csv"
    auditlog("convert", part, out)
    raw = out.read_bytes()
    assert raw.startswith(b"id,occurred_at,") and raw.endswith(b"\r\n")
    with open(out, newline="", encoding="utf-8") as f:
        reader = csv.reader(f, strict=True)
        header = next(reader)
        rows = [dict(zip(header, r, strict=True)) for r in reader]
    assert header == CSV_COLUMNS
    want = parquet_rows(part)
    assert len(rows) == len(want) == len(events)
    for got, w in zip(rows, want):
        for c in CSV_COLUMNS:
            if c in ("changes", "metadata"):
                assert (json.loads(got[c]) if got[c] else None) == (json.loads(w[c]) if w[c] else None), c
            else:
                assert got[c] == guarded(w[c]), (c, got[c], w[c])
    tricky = next(r for r in rows if r["id"] == "tricky-1")
    assert tricky["user_agent"] == "'=cmd|' /C calc'!A0"
    assert tricky["description"] == "'+1, -1, @sum"
    assert tricky["resource_name"] == "line1\nline2"
    assert tricky["actor_name"] == TRICKY[0]["actor"]["name"]
    assert json.loads(tricky["metadata"]) == TRICKY[0]["metadata"]


def test_jsonl_export_lines_are_whole_events(tmp_path, auditlog, gen_events):
    src, events = write_input(tmp_path, gen_events, n=500)
    part = tmp_path / "part.parquet"
    auditlog("convert", src, part)
    out = tmp_path / "out.jsonl"
    auditlog("convert", part, out)
    lines = [json.loads(l) for l in out.read_text(encoding="utf-8").splitlines()]
    assert len(lines) == len(events)
    keys = [(l["occurred_at"], l["id"]) for l in lines]
    assert keys == sorted(keys, reverse=True)
    by_id = {l["id"]: l for l in lines}
    for e in events:
        got = by_id[e["id"]]
        assert got["tenant_id"] == e["tenant_id"] and got["action"] == e["action"]
        assert got["actor"]["id"] == e["actor"]["id"]
        assert got.get("metadata") == e.get("metadata")
        assert got.get("changes") == e.get("changes")
        assert len(got["hash"]) == 64


def test_a_file_that_is_not_an_archive_part_is_refused(tmp_path, auditlog):
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"PAR1 not really")
    result = auditlog("convert", bad, tmp_path / "out.csv", check=False)
    assert result.returncode != 0 and "not archive Parquet" in result.stderr


class CfnLoader(yaml.SafeLoader):
    pass


CfnLoader.add_multi_constructor("!", lambda loader, suffix, node: None)


def test_the_glue_table_describes_the_parquet_we_write(tmp_path, auditlog, gen_events):
    src, _ = write_input(tmp_path, gen_events, n=10)
    part = tmp_path / "part.parquet"
    auditlog("convert", src, part)
    template = yaml.load((ROOT / "template.yaml").read_text(), Loader=CfnLoader)
    table = template["Resources"]["ArchiveTable"]["Properties"]["TableInput"]
    columns = [(c["Name"], c["Type"]) for c in table["StorageDescriptor"]["Columns"]]
    schema = pq.read_schema(part)
    assert [name for name, _ in columns] == schema.names == COLUMNS
    for name, glue_type in columns:
        arrow = str(schema.field(name).type)
        assert (glue_type, arrow) in (("string", "string"), ("timestamp", "timestamp[us, tz=UTC]")), name
    assert [k["Name"] for k in table["PartitionKeys"]] == ["tenant", "date"]
