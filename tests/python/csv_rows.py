"""Prints an export CSV as Python's csv module reads it (a parser no one here wrote):
{"header": [...], "rows": [{column: value}, ...]} as JSON.

usage: csv_rows.py FILE
"""
import csv
import json
import sys

with open(sys.argv[1], newline="", encoding="utf-8") as f:
    reader = csv.reader(f, strict=True)
    header = next(reader)
    rows = [dict(zip(header, r, strict=True)) for r in reader]
json.dump({"header": header, "rows": rows}, sys.stdout)
