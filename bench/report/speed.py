"""How fast each GPU run trained beside how fast it could have (issue 50): images/s and MFU from the run's record,
the floor of its training step on that GPU from the roofline (`bench.roofline.floor_from_catalogue`, from the
catalogue's counts for the run's model and mini-batch at 360x480, so records made before the floor was recorded get
it too), and how many times slower.
"""
from __future__ import annotations

from bench.architectures import paper_names
from bench.report.tables import Table

SHARED_NOTE = ("A run that shared its GPU with other runs (a lease's lanes, `tools/gpu-lease.sh`) shows its share: "
               "the lease's README says which did.")


def _gpu(rec: dict) -> str | None:
    return ((rec.get("provenance") or {}).get("machine") or {}).get("gpu")


def table_speed(suite: str, groups: dict) -> Table | None:
    """One row per GPU run of the page's records: model, variant, seed, GPU, precision, step variant, images/s,
    MFU, the roofline floor in images/s and the times it; None where no record trained on a GPU."""
    from bench.roofline import GPUS, floor_from_catalogue
    names = paper_names()
    recs = [r for rs in groups.values() for r in rs if str(r.get("device", "")).startswith("cuda")
            and (r.get("timing") or {}).get("train_images_per_second")]
    if not recs:
        return None
    t = Table(f"{suite.replace('-', '_')}_speed", f"Training speed beside the roofline floor ({suite})",
              ["run", "seed", "GPU", "precision", "step", "images/s", "MFU %", "floor images/s", "x floor"],
              notes=["Floor: the training step's roofline on that GPU (docs/costs.md: max of FLOPs over the bf16 "
                     "peak and the minimum HBM bytes over the bandwidth), for the run's model, mini-batch and size; "
                     "x floor = floor images/s / ours.", SHARED_NOTE])
    for r in sorted(recs, key=lambda r: (r["member"], r.get("variant") or "", r.get("seed", 0))):
        timing, cfg = r["timing"], r.get("config") or {}
        gpu = next((g for g in GPUS if g in (_gpu(r) or "")), None)
        at_catalogue_size = tuple(cfg.get("image_size") or ()) == (360, 480)
        try:  # from the catalogue's counts (no torch in `bench report`); a model beyond it: no floor
            floor = floor_from_catalogue(r["member"], cfg["batch_size"], gpu) if gpu and at_catalogue_size else None
        except Exception:
            floor = None
        ips = timing["train_images_per_second"]
        step = (r.get("step_variant") or {}).get("name", "eager (before selection)")
        label = names.get(r["member"], r["member"]) + (f" [{r['variant']}]" if r.get("variant") else "")
        t.rows.append([label, r.get("seed", "–"), _gpu(r) or "–", r.get("precision", "–"), step, f"{ips:,.0f}",
                       f"{100 * timing['mfu']:.1f}" if timing.get("mfu") else "–",
                       f"{floor:,.0f}" if floor else "–", f"{floor / ips:.1f}" if floor else "–"])
        t.row_records.append([r])
    return t
