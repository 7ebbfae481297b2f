"""The README and docs/: every relative link reaches a file and, with a #fragment, a
heading of it; the README stays the short first read with the two commands."""
import re

import pytest

from conftest import ROOT

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def anchors(path):
    """GitHub's heading anchors: lowercase, punctuation dropped, spaces to hyphens."""
    out = set()
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            out.add(re.sub(r"[^a-z0-9 _-]", "", title).replace(" ", "-"))
    return out


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_relative_links_reach_a_file_and_heading(doc):
    text = doc.read_text(encoding="utf-8")
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+:", target):
            continue
        path, _, fragment = target.partition("#")
        dest = (doc.parent / path).resolve() if path else doc
        assert dest.exists(), f"{doc.name}: {target}"
        if fragment:
            assert fragment in anchors(dest), f"{doc.name}: no heading #{fragment} in {dest.name}"


def test_the_readme_is_the_short_first_read():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 200
    for must in ["./infra/local/run", "./infra/local/test", "../shared/CONTRACT.md", "docs/design.md",
                 "docs/operations.md", "docs/benchmarks.md", "## Sending events", "## Reading events",
                 "## Exports", "## The `auditlog` command", "## Deploying"]:
        assert must in text, must
