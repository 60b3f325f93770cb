"""A recorded run's model: the weights of the iteration validation selected, kept as `safetensors` (no pickle,
loadable without this harness) with what a reader needs to rebuild the model in the file's metadata (model name,
revision, number of classes, the recipe's input normalisation, image size and fit), and `load_model` that gives the
model back in evaluation mode, refusing a file whose digest or revision does not match the record's.

Where they are:
- every training run keeps them outside results/, at `checkpoints/<suite>/<member>/<run-id>/selected.safetensors`,
  and run.json names their SHA-256 (``weights``);
- where they are under `COMMIT_LIMIT_BYTES` (the Table 1 family), they also go in the record folder as
  `weights.safetensors`, sealed with it: the model zoo of the rows we recorded.

Weights attached to a record made before weights were kept (`attach_from_checkpoint`, from the training checkpoint a
lease brought back) are held to the record's seal instead of run.json, and re-tested against the record's committed
predictions before they are attached (`bench.reinfer`).

    model = bench.load_model("results/camvid-decoder-variants/fcn-basic/<run>")   # or a .safetensors file

    python -m bench.weights --attach RECORD CHECKPOINT [--images N] [--out RETEST.json]
"""
from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

from bench.errors import BenchError

KEPT_NAME = "selected.safetensors"  # under checkpoints/<suite>/<member>/<run-id>/
COMMITTED_NAME = "weights.safetensors"  # in the record folder, sealed with it
COMMIT_LIMIT_BYTES = 8 * 2 ** 20  # weights under this go into the record folder (the Table 1 family)
FORMAT = "segnet-bench-weights/1"


def kept_weights_path(checkpoints, suite: str, member: str, run_id: str) -> Path:
    """Where a recorded run's selected weights are kept (never committed)."""
    return Path(checkpoints) / suite / member / run_id / KEPT_NAME


def sha256_file(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def weights_metadata(*, member: str, revision: int, num_classes: int, recipe, dataset: str, suite: str,
                     run_id: str, iteration: int, **extra) -> dict:
    """The safetensors metadata (strings only): enough to rebuild the model and feed it as the suite did."""
    meta = {"format": FORMAT, "model": member, "revision": revision, "num_classes": num_classes,
            "input_normalisation": recipe.input_normalisation, "image_size": list(recipe.image_size),
            "fit": recipe.fit, "dropout": recipe.dropout, "dataset": dataset, "suite": suite, "run_id": run_id,
            "selected_iteration": iteration, **extra}
    return {k: v if isinstance(v, str) else json.dumps(v) for k, v in meta.items()}


def weights_bytes(state_dict: dict, metadata: dict) -> bytes:
    """A state dict as safetensors bytes (contiguous CPU tensors; shared storage copied apart)."""
    from safetensors.torch import save
    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in state_dict.items()}
    return save(tensors, metadata=metadata)


def write_weights(path: Path, data: bytes) -> dict:
    """The bytes to ``path`` (a temporary name, then renamed); their size and SHA-256."""
    from bench.safety import temporary_path, write_error
    import os
    path = Path(path)
    tmp = temporary_path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise write_error(path, exc, "the selected weights") from None
    return {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def read_metadata(path: Path) -> dict:
    """The metadata of a weights file, JSON values decoded; one line where it is not a safetensors file."""
    from safetensors import safe_open
    path = Path(path)
    if not path.is_file():
        raise BenchError(f"{path}: weights file not found")
    try:
        with safe_open(str(path), framework="pt") as f:
            raw = f.metadata() or {}
    except Exception as exc:
        raise BenchError(f"{path}: not a safetensors file ({exc.__class__.__name__}: {str(exc)[:120]})") from None
    out = {}
    for k, v in raw.items():
        try:
            out[k] = json.loads(v)
        except ValueError:
            out[k] = v
    if out.get("format") != FORMAT:
        raise BenchError(f"{path}: not weights kept by this harness (no {FORMAT!r} in its metadata)")
    return out


# -- where a record's weights are, and their digest -------------------------------------------------------------
def record_folder_of(source) -> Path:
    """A record folder from a folder, its run.json, or a record loaded with `bench.load_record`."""
    folder = getattr(source, "folder", None)
    if folder is None:
        folder = Path(source)
        if folder.name == "run.json":
            folder = folder.parent
    return Path(folder)


def record_weights(folder: Path, checkpoints="checkpoints") -> tuple[Path, str, dict]:
    """The weights file of a record, the SHA-256 it must have, and the record: the committed file beside run.json
    where there is one, else the kept one under ``checkpoints``. The digest comes from run.json (``weights``), or,
    for weights attached after recording, from the record's seal. One line where there are none."""
    folder = Path(folder)
    try:
        rec = json.loads((folder / "run.json").read_text())
    except (OSError, ValueError) as exc:
        raise BenchError(f"{folder / 'run.json'}: cannot be read as a record ({exc.__class__.__name__})") from None
    kept = rec.get("weights") or {}
    committed = folder / COMMITTED_NAME
    if kept.get("sha256"):
        path = committed if committed.is_file() else kept_weights_path(checkpoints, rec["suite"], rec["member"],
                                                                       rec["run_id"])
        if not path.is_file():
            raise BenchError(f"{path}: the selected weights of {folder} are not here (they stay on the machine that "
                             f"trained it; give --checkpoints where they are)")
        return path, kept["sha256"], rec
    if committed.is_file():  # attached after recording: held to the seal
        from bench.seal import read_seal
        results = _results_of(folder)
        entry = read_seal(results).get(folder.resolve().relative_to(results.resolve()).as_posix(), {})
        digest = entry.get("files", {}).get(COMMITTED_NAME)
        if digest is None:
            raise BenchError(f"{committed}: not sealed with {folder} (run.json names no weights and the seal holds "
                             "none): not trusted")
        return committed, digest, rec
    raise BenchError(f"{folder}: the record keeps no weights (recorded before weights were kept, or post-processed "
                     "from another run's)")


def _results_of(folder: Path) -> Path:
    """The results folder of a record folder (<results>/<suite>/<member>/<run>)."""
    return Path(folder).resolve().parents[2]


def load_model(source, *, checkpoints="checkpoints", device="cpu", check_revision: bool = True):
    """The model of a record (a folder, its run.json, a loaded record) or of a weights file, in evaluation mode on
    ``device``, its selected weights loaded. Refuses, in one line, a file whose SHA-256 is not the record's (weights
    of another run), a model revision other than the record's or this harness's (a changed model never takes old
    weights), or a state dict that does not fit. ``model.kept_weights``: the file's metadata and path."""
    import torch
    from safetensors.torch import load_file
    from bench import architectures
    path = Path(source) if isinstance(source, (str, Path)) else None
    rec = None
    if path is not None and path.suffix == ".safetensors":
        digest = None
    else:
        path, digest, rec = record_weights(record_folder_of(source), checkpoints)
    if digest is not None and sha256_file(path) != digest:
        raise BenchError(f"{path}: SHA-256 {sha256_file(path)[:12]}... is not the {digest[:12]}... its record names "
                         "(weights of another run?); not loaded")
    meta = read_metadata(path)
    name, revision = meta["model"], int(meta["revision"])
    if rec is not None and (rec["member"] != name and rec["model"]["name"] != name):
        raise BenchError(f"{path}: weights of {name}, but the record is of {rec['member']}; not loaded")
    if rec is not None and int(rec["model"].get("revision", 1)) != revision:
        raise BenchError(f"{path}: weights of {name} revision {revision}, but the record names revision "
                         f"{rec['model'].get('revision', 1)}; not loaded")
    if check_revision and architectures.model_revision(name) != revision:
        raise BenchError(f"{path}: weights of {name} revision {revision}, but this harness builds revision "
                         f"{architectures.model_revision(name)}: a changed model does not take old weights")
    options = architectures.model_meta(name)["options"]
    model = architectures.create_model(name, num_classes=int(meta["num_classes"]), encoder_weights=None,
                                       **({"dropout": float(meta["dropout"])} if "dropout" in options else {}))
    try:
        model.load_state_dict(load_file(str(path)))
    except (RuntimeError, ValueError, KeyError) as exc:
        raise BenchError(f"{path}: does not fit {name} ({str(exc).splitlines()[0][:160]}); not loaded") from None
    model.kept_weights = {**meta, "path": str(path), "record": rec}
    return model.to(torch.device(device) if isinstance(device, str) else device).eval()


# -- keeping them when a run is recorded ------------------------------------------------------------------------
def keep_selected_weights(run, run_id: str, record_tmp: Path) -> dict:
    """A training run's selected weights (`bench.train.MemberTraining`) as safetensors under the checkpoints
    folder, and in the record folder being written (``record_tmp``) where they are small enough; what run.json says
    of them."""
    from bench import architectures
    state = run.state
    meta = weights_metadata(member=run.member, revision=architectures.model_revision(run.member),
                            num_classes=run.dataset.num_classes, recipe=run.recipe, dataset=run.dataset.name,
                            suite=run.suite.name, run_id=run_id, iteration=state.best["iteration"])
    data = weights_bytes(state.best["model"], meta)
    kept = kept_weights_path(run.checkpoints, run.suite.name, run.member, run_id)
    facts = write_weights(kept, data)
    committed = len(data) < COMMIT_LIMIT_BYTES
    if committed:
        write_weights(Path(record_tmp) / COMMITTED_NAME, data)
    return {"format": "safetensors", "sha256": facts["sha256"], "bytes": facts["bytes"],
            "iteration": state.best["iteration"], "kept": kept.as_posix(),
            "file": COMMITTED_NAME if committed else None}


# -- attaching them to a record made before they were kept ------------------------------------------------------
def attach_from_checkpoint(record: Path, checkpoint: Path, *, images: int | None = None, device="cpu",
                           log=print) -> dict:
    """The selected weights of a training checkpoint (one a lease brought back for a run recorded at its
    deadline) attached to that run's record as `weights.safetensors`, sealed with it, once it is shown to be the
    record's: same model, revision and recipe, the checkpoint's selected iteration the record's, and the weights
    re-inferring the record's committed predictions within `bench.reinfer`'s tolerance. Returns the re-test."""
    import torch
    from bench import architectures
    from bench.config import Recipe, plain_recipe, same_recipe
    from bench.datasets import get_dataset
    from bench.reinfer import reinfer
    from bench.seal import read_seal, record_digests, seal_records
    folder = Path(record)
    rec = json.loads((folder / "run.json").read_text())
    target = folder / COMMITTED_NAME
    if target.exists() or rec.get("weights"):
        raise BenchError(f"{folder}: already has weights; nothing attached")
    results = _results_of(folder)
    rel = folder.resolve().relative_to(results.resolve()).as_posix()
    sealed = read_seal(results).get(rel)
    if sealed is None or record_digests(folder) != sealed:
        raise BenchError(f"{folder}: not as sealed in {results}; nothing attached")
    try:
        saved = torch.load(checkpoint, map_location="cpu", weights_only=False)
        best = saved["state"]["best"]
    except Exception as exc:
        raise BenchError(f"{checkpoint}: not a training checkpoint ({exc.__class__.__name__})") from None
    if best is None or best["iteration"] != rec["selected"]["iteration"]:
        raise BenchError(f"{checkpoint}: its selected iteration is {best and best['iteration']}, the record's "
                         f"{rec['selected']['iteration']}: not this record's weights")
    recipe = Recipe(**plain_recipe(rec["config"]))
    if not same_recipe(saved["recipe"], recipe):
        raise BenchError(f"{checkpoint}: made with another recipe than {folder}")
    revision = int(rec["model"].get("revision", 1))
    if architectures.model_revision(rec["member"]) != revision:
        raise BenchError(f"{folder}: {rec['member']} revision {revision} is not the one this harness builds")
    meta = weights_metadata(member=rec["member"], revision=revision, num_classes=get_dataset(rec["dataset"]).num_classes,
                            recipe=recipe, dataset=rec["dataset"],
                            suite=rec["suite"], run_id=rec["run_id"], iteration=best["iteration"],
                            attached=f"from the training checkpoint {Path(checkpoint).name} after recording")
    data = weights_bytes(best["model"], meta)
    candidate = folder.parent / f".{folder.name}.{COMMITTED_NAME}"
    write_weights(candidate, data)
    result = reinfer(folder, weights=candidate, device=device, images=images, log=log)
    if not result["within_tolerance"]:
        candidate.unlink()
        raise BenchError(f"{checkpoint}: its weights do not reproduce {folder}'s predictions "
                         f"({result['agreement']:.4%} of pixels agree); nothing attached")
    candidate.replace(target)
    seal_records(results, [folder])
    return result


def main(argv=None) -> int:
    import argparse
    p = argparse.ArgumentParser(prog="python -m bench.weights", description=__doc__.split("\n\n")[0])
    p.add_argument("--attach", nargs=2, metavar=("RECORD", "CHECKPOINT"), required=True)
    p.add_argument("--images", type=int, default=None, help="re-test on the first N test images (default: all)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", default=None, help="also write the re-test as JSON here, with provenance (must not exist)")
    args = p.parse_args(argv)
    try:
        result = attach_from_checkpoint(Path(args.attach[0]), Path(args.attach[1]), images=args.images,
                                        device=args.device)
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    from bench.records import provenance
    out = {"attached": str(Path(args.attach[0]) / COMMITTED_NAME), "from_checkpoint": args.attach[1],
           "retest": {k: v for k, v in result.items() if k != "weights"}, "provenance": provenance()}
    print(json.dumps(out["retest"], indent=1))
    if args.out:
        with open(args.out, "x") as f:
            json.dump(out, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
