"""The seal of a results folder: a content digest of every file of every record, written by `bench run` as it
records (`seal_record`) into `<results>/records.seal.json`, committed with the records. `bench check` re-derives what
it can (test scores from the predictions, the selected iteration from the curves, the budgets from the recipe) and
holds the rest to the seal (`verify_seals`): a file or a run.json field edited by hand, a record deleted, or one
that appeared without `bench run`, fails the gate, named.

A record is sealed by digests of its files (the predictions as one digest over their names and contents) and of
each top-level field of its run.json, so that a changed record names the field that changed.

    python -m bench.seal RESULTS [RECORD ...]   seals records made before sealing existed (or, deliberately, ones
                                                re-made by hand): every unsealed record, or the ones named
    python -m bench.seal --forget RESULTS RECORD ...
                                                removes records deliberately (superseded smoke records, say: git
                                                history keeps them) with their seal entries, so the gate does not
                                                report them vanished
    python -m bench.seal --import SOURCE RESULTS
                                                copies the sealed records of another results folder (a GPU lease's,
                                                ../shared/gpu-records/...) into RESULTS with their seals, each checked
                                                against its seal first; nothing is copied if one differs or exists
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import sys
from pathlib import Path

from bench.errors import BenchError
from bench.safety import write_text_atomic

SEAL = "records.seal.json"


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def record_digests(folder: Path) -> dict:
    """The digests of a record folder: each file, the predictions as one, and each top-level field of run.json."""
    folder = Path(folder)
    files, predictions = {}, []
    for p in sorted(folder.rglob("*")):
        if p.is_dir():
            continue
        rel = p.relative_to(folder).as_posix()
        digest = _sha256(p.read_bytes())
        if rel.startswith("predictions/"):
            predictions.append(f"{rel} {digest}")
        else:
            files[rel] = digest
    try:
        record = json.loads((folder / "run.json").read_text())
    except (OSError, ValueError):
        record = {}
    fields = {k: _sha256(json.dumps(v, sort_keys=True).encode()) for k, v in record.items()} \
        if isinstance(record, dict) else {}
    return {"files": files, "predictions": _sha256("\n".join(predictions).encode()),
            "prediction_files": len(predictions), "fields": fields}


def read_seal(results: Path) -> dict:
    """{record folder relative to results: its digests}; {} where the results folder has no seal yet."""
    path = Path(results) / SEAL
    if not path.is_file():
        return {}
    try:
        seal = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise BenchError(f"{path}: the seal of the records cannot be read ({exc})") from None
    if not isinstance(seal, dict) or not isinstance(seal.get("records"), dict):
        raise BenchError(f"{path}: not a seal of records (no \"records\" table)")
    return seal["records"]


@contextlib.contextmanager
def _sealing(results: Path):
    """The seal file changed by one process at a time (an OS lock: jobs of a dispatch record in parallel)."""
    Path(results).mkdir(parents=True, exist_ok=True)
    fd = os.open(Path(results) / f".{SEAL}.lock", os.O_CREAT | os.O_RDWR, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def seal_records(results: Path, folders: list[Path]) -> None:
    """Adds (or replaces) the digests of ``folders`` in the seal of ``results``."""
    results = Path(results)
    _merge_seal(results, {Path(folder).resolve().relative_to(results.resolve()).as_posix(): record_digests(folder)
                          for folder in folders})


def import_sealed(source: Path, results: Path) -> list[str]:
    """Copies every record sealed in ``source`` into ``results`` with its seal entry, after checking each against
    that seal (the files as `bench run` wrote them). BenchError, nothing copied, where a record differs from its
    seal or already exists in ``results``. Returns the records copied (relative paths)."""
    import shutil
    source, results = Path(source), Path(results)
    sealed = read_seal(source)
    if not sealed:
        raise BenchError(f"{source / SEAL}: no sealed records to import")
    for rel, digests in sealed.items():
        if not (source / rel / "run.json").is_file():
            raise BenchError(f"{source / rel}: sealed in {source / SEAL} but not there")
        if (results / rel).exists():
            raise BenchError(f"{results / rel}: already exists; not imported again")
        if record_digests(source / rel) != digests:
            changed = _differences(digests, record_digests(source / rel))
            raise BenchError(f"{source / rel}: differs from its seal ({'; '.join(changed)}); not imported")
    for rel in sealed:
        shutil.copytree(source / rel, results / rel)
        for path in [results / rel, *(results / rel).rglob("*")]:  # copies of read-only files: writable by their owner
            path.chmod(path.stat().st_mode | 0o200)
    _merge_seal(results, sealed)
    return sorted(sealed)


def forget_records(results: Path, folders: list[Path]) -> None:
    """Deletes record ``folders`` of ``results`` and their seal entries (a deliberate removal, not a vanished
    record); BenchError, nothing deleted, where a folder is not a record of ``results``."""
    import shutil
    results = Path(results)
    rels = []
    for folder in folders:
        if not (Path(folder) / "run.json").is_file():
            raise BenchError(f"{folder}: not a record folder (no run.json); nothing removed")
        try:
            rels.append(Path(folder).resolve().relative_to(results.resolve()).as_posix())
        except ValueError:
            raise BenchError(f"{folder}: not under {results}; nothing removed") from None
    _merge_seal(results, {}, forget=rels)
    for folder in folders:
        shutil.rmtree(folder)


def _merge_seal(results: Path, entries: dict, forget=()) -> None:
    """Adds (or replaces) ``entries`` in the seal of ``results`` and drops those of ``forget``, under its lock."""
    with _sealing(results):
        records = read_seal(results)
        records.update(entries)
        for rel in forget:
            records.pop(rel, None)
        text = json.dumps({"about": "content digests of every record: bench check fails on any difference "
                                    "(bench.seal)", "records": dict(sorted(records.items()))}, indent=1)
        write_text_atomic(results / SEAL, text + "\n", "the seal of the records")


def seal_record(results: Path, folder: Path) -> None:
    seal_records(results, [folder])


def _differences(sealed: dict, now: dict) -> list[str]:
    out = [f"{name} {'is missing' if name not in now['files'] else 'differs'}"
           for name, digest in sealed["files"].items() if now["files"].get(name) != digest and name != "run.json"]
    out += [f"{name} is not sealed" for name in now["files"] if name not in sealed["files"]]
    if now["files"].get("run.json") != sealed["files"].get("run.json"):
        fields = sorted(k for k in set(sealed["fields"]) | set(now["fields"])
                        if sealed["fields"].get(k) != now["fields"].get(k))
        out.append("run.json differs" + (f" (fields: {', '.join(fields)})" if fields else " (its formatting)"))
    if (now["predictions"], now["prediction_files"]) != (sealed["predictions"], sealed["prediction_files"]):
        out.append(f"predictions differ ({sealed['prediction_files']} sealed, {now['prediction_files']} now)")
    return out


def verify_seals(results: Path, record_folders: list[Path]) -> list[dict]:
    """One outcome per record: pass where its files are those sealed, fail naming what differs; a sealed record
    that is gone, or a record that was never sealed, fails too."""
    results = Path(results)
    records = read_seal(results)
    outcomes, present = [], set()
    for folder in record_folders:
        rel = Path(folder).resolve().relative_to(results.resolve()).as_posix()
        present.add(rel)
        rid = f"seal:{rel}"
        if rel not in records:
            outcomes.append({"rule": rid, "status": "fail", "detail": f"{folder}: not sealed in {results / SEAL} "
                             "(not recorded by `bench run`; `python -m bench.seal` seals a record made otherwise)"})
            continue
        differences = _differences(records[rel], record_digests(folder))
        outcomes.append({"rule": rid, "status": "fail" if differences else "pass",
                         "detail": f"{folder}: " + "; ".join(differences) if differences else "as sealed"})
    outcomes += [{"rule": f"seal:{rel}", "status": "fail",
                  "detail": f"{results / rel}: sealed in {results / SEAL} but gone (a deleted record)"}
                 for rel in sorted(set(records) - present)]
    return outcomes


def main(argv=None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args:
        print(__doc__.strip().splitlines()[-2].strip(), file=sys.stderr)
        return 2
    from bench.records import find_records, folders_without_record
    if args[0] == "--import":
        if len(args) != 3:
            print("usage: python -m bench.seal --import SOURCE RESULTS", file=sys.stderr)
            return 2
        try:
            copied = import_sealed(Path(args[1]), Path(args[2]))
        except BenchError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        print(f"imported {len(copied)} sealed record(s) into {args[2]}: " + ", ".join(copied))
        return 0
    if args[0] == "--forget":
        try:
            forget_records(Path(args[1]), [Path(a) for a in args[2:]])
        except (BenchError, IndexError) as exc:
            print(f"error: {exc}" if isinstance(exc, BenchError) else
                  "usage: python -m bench.seal --forget RESULTS RECORD ...", file=sys.stderr)
            return 1 if isinstance(exc, BenchError) else 2
        print(f"removed {len(args) - 2} record(s) and their seal entries from {args[1]}")
        return 0
    results = Path(args[0])
    named = [Path(a) for a in args[1:]]
    sealed = read_seal(results)
    folders = named or [p.parent for p in find_records(results)
                        if p.parent.resolve().relative_to(results.resolve()).as_posix() not in sealed]
    folders = [f for f in folders if f not in folders_without_record(results)]
    seal_records(results, folders)
    print(f"sealed {len(folders)} record(s) in {results / SEAL}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
