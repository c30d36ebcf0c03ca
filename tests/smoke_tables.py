"""The smoke run's result tables and their committed SHA-256 manifest (tests/expected/smoke-tables.sha256).

Any machine that runs `make test` checks that it reproduces every table of the smoke DAG byte for byte
(tests/workflow/test_workflow.py). When a change is meant to move results, regenerate the manifest deliberately:

    make expected        # = python tests/smoke_tables.py --update: runs the smoke DAG in a temporary folder

and say in the commit which tables changed and why.
"""

from __future__ import annotations

import argparse
import fnmatch
import hashlib
import shutil
import sys
import tempfile
from pathlib import Path

TABLE_SUFFIXES = {".csv", ".json", ".jsonl", ".md", ".txt"}
MANIFEST = Path(__file__).resolve().parent / "expected" / "smoke-tables.sha256"

# Tables left out of the manifest, each with the reason (paths relative to results/).
EXCLUDED: dict[str, str] = {}


def result_tables(workdir: Path) -> dict[str, bytes]:
    """Every table and token file under results/ (figures, models and archives excluded)."""
    root = workdir / "results"
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and p.suffix in TABLE_SUFFIXES}


def excluded(name: str) -> str | None:
    """Why ``name`` is not in the manifest, or None."""
    return next((reason for pattern, reason in EXCLUDED.items() if fnmatch.fnmatch(name, pattern)), None)


def table_digests(workdir: Path) -> dict[str, str]:
    return {name: hashlib.sha256(data).hexdigest() for name, data in result_tables(workdir).items()
            if excluded(name) is None}


def read_manifest(path: Path = MANIFEST) -> dict[str, str]:
    digests = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line and not line.startswith("#"):
            digest, name = line.split(maxsplit=1)
            digests[name] = digest
    return digests


def write_manifest(digests: dict[str, str], path: Path = MANIFEST) -> None:
    lines = ["# SHA-256 of every result table of the smoke DAG (tests/config.smoke.yaml + the LilyPond overlay with",
             "# the Hardy archive from ../shared), as `sha256sum` writes them, paths under results/.",
             "# Checked by tests/workflow/test_workflow.py; regenerate with `make expected` only when results "
             "should move.",
             *(f"# excluded: {pattern}: {reason}" for pattern, reason in EXCLUDED.items()),
             *(f"{digest}  {name}" for name, digest in sorted(digests.items()))]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--update", action="store_true", help="run the smoke DAG and rewrite the manifest")
    parser.add_argument("--from-run", type=Path, help="a finished smoke working directory to read instead")
    args = parser.parse_args()
    if not (args.update or args.from_run):
        parser.error("nothing to do: give --update or --from-run")
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from conftest import SHARED_ARCHIVE, copy_workflow, run_snakemake, smoke_configs

    if not SHARED_ARCHIVE.exists():
        parser.error(f"{SHARED_ARCHIVE}: missing; the manifest covers the smoke run with the LilyPond source")
    if args.from_run:
        workdir = args.from_run
    else:
        workdir = copy_workflow(Path(tempfile.mkdtemp(prefix="rnnmem-smoke-")))
        run_snakemake(workdir, "--configfile", *smoke_configs(workdir), "--cores", "all", timeout=3600)
    digests = table_digests(workdir)
    write_manifest(digests)
    print(f"{MANIFEST}: {len(digests)} tables from {workdir}")
    if not args.from_run:
        shutil.rmtree(workdir)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
