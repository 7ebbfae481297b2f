"""Shared fixtures for the tests that read our files with tools no one here wrote."""
import os
import pathlib
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]


def _shared():
    """`../shared` beside the clone, or beside the main checkout when this is a git worktree."""
    beside = ROOT.parent / "shared"
    if beside.exists():
        return beside
    common = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--path-format=absolute", "--git-common-dir"],
                            capture_output=True, text=True, check=False).stdout.strip()
    return pathlib.Path(common).parent.parent / "shared" if common else beside


SHARED = _shared()
GEN = SHARED / "bench" / "gen_events.py"


@pytest.fixture(scope="session")
def auditlog():
    """The auditlog binary, built by infra/local/test before pytest runs."""
    path = ROOT / "target" / "debug" / "auditlog"
    assert path.exists(), "build it first: cargo build -p audit-cli --bin auditlog"

    def run(*args, check=True):
        return subprocess.run([str(path), *map(str, args)], capture_output=True, text=True, check=check,
                              env={**os.environ, "RUST_LOG": "warn"})

    return run


@pytest.fixture(scope="session")
def gen_events():
    def gen(n, *extra):
        out = subprocess.run(["python3", str(GEN), str(n), *map(str, extra)], capture_output=True, text=True, check=True)
        return out.stdout

    return gen
