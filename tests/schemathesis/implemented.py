#!/usr/bin/env python3
"""openapi.yaml as implemented today: the document without its `x-target: true` parts
(the shared decisions not built yet), so schemathesis can tell a bug from a plan.

usage: implemented.py IN.yaml OUT.yaml
"""
import sys

import yaml


def strip(node):
    """Drops every parameter and property marked x-target, and the required entries of
    the dropped properties."""
    if isinstance(node, list):
        return [strip(n) for n in node if not (isinstance(n, dict) and n.get("x-target"))]
    if not isinstance(node, dict):
        return node
    out = {k: strip(v) for k, v in node.items()}
    props = out.get("properties")
    if isinstance(props, dict):
        gone = {name for name, schema in node["properties"].items() if isinstance(schema, dict) and schema.get("x-target")}
        out["properties"] = {k: v for k, v in props.items() if k not in gone}
        if "required" in out:
            out["required"] = [r for r in out["required"] if r not in gone]
    return out


def main():
    with open(sys.argv[1], encoding="utf-8") as f:
        doc = yaml.safe_load(f)
    targets = {f"#/components/parameters/{name}" for name, p in doc["components"]["parameters"].items()
               if p.get("x-target")}
    for item in doc["paths"].values():
        for op in item.values():
            op["parameters"] = [p for p in op.get("parameters", []) if p.get("$ref") not in targets]
    for ref in targets:
        del doc["components"]["parameters"][ref.rsplit("/", 1)[1]]
    with open(sys.argv[2], "w", encoding="utf-8") as f:
        yaml.safe_dump(strip(doc), f, sort_keys=False, allow_unicode=True)


if __name__ == "__main__":
    main()
