"""Prints one tenant's archived rows as DuckDB reads the archive (a reader no one here
wrote): `events/**/*.parquet` with Hive partitioning, one JSON object per line, in
(occurred_at, id) order. Used by the Rust archive tests.

usage: archive_rows.py BUCKET_DIR TENANT [full|ids]
"""
import glob
import json
import sys

import duckdb


def main():
    root, tenant = sys.argv[1], sys.argv[2]
    mode = sys.argv[3] if len(sys.argv) > 3 else "full"
    pattern = f"{root}/events/**/*.parquet"
    if not glob.glob(pattern, recursive=True):
        return
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    # Times as text in SQL: DuckDB would otherwise need pytz to hand them to Python.
    fmt = "'%Y-%m-%dT%H:%M:%S.%fZ'"
    cols = "id" if mode == "ids" else (
        f"* REPLACE (strftime(occurred_at, {fmt}) AS occurred_at, strftime(received_at, {fmt}) AS received_at,"
        " CAST(date AS VARCHAR) AS date)"
    )
    cur = con.execute(
        f"SELECT {cols} FROM read_parquet(?, hive_partitioning = true) WHERE tenant = ? ORDER BY occurred_at, id",
        [pattern, tenant],
    )
    names = [d[0] for d in cur.description]
    out = sys.stdout
    while True:
        rows = cur.fetchmany(10000)
        if not rows:
            break
        for row in rows:
            if mode == "ids":
                out.write(row[0] + "\n")
            else:
                out.write(json.dumps(dict(zip(names, row))) + "\n")


if __name__ == "__main__":
    main()
