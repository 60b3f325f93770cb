"""Models beyond the paper in a suite's report: the registered models a user trained under the suite's recipe
(`bench run --add-member`, a plugin's model), in rows of their own beside, never among, the paper's members:
their test scores, parameters and GMACs from the run records, and their costs from `bench profile` where profiled.
"""
from __future__ import annotations

from bench.architectures import paper_names
from bench.records import latest_profile_rows
from bench.report.tables import METRICS, Table, _ours_cell, stop_cell

BEYOND_NOTE = ("Beyond the paper: models added to the suite (`bench run --add-member`), trained under its recipe; "
               "the paper has no row for them, so there is no Δ and no band.")


def paper_members(suite) -> set:
    """The members the suite's TOML names (those it trains and those it post-processes)."""
    return set(suite.members) | set(suite.postprocessed)


def split_beyond(suite_name: str, groups: dict) -> tuple[dict, dict]:
    """({key: records} of the suite's own members, {key: records} of the models added beyond them)."""
    from bench.config import load_suite
    from bench.errors import BenchError
    try:
        ours = paper_members(load_suite(suite_name))
    except BenchError:  # a suite whose TOML is not in this checkout: every member is its own
        return groups, {}
    own = {k: v for k, v in groups.items() if k[1] in ours}
    return own, {k: v for k, v in groups.items() if k[1] not in ours}


def _profiled(profiles: list) -> tuple[dict, str]:
    """{model: profile row} of the newest GPU rows (else CPU rows), and what they are ("cuda fp32", ...)."""
    for device in ("cuda", "cpu"):
        rows = latest_profile_rows(profiles, device=device)
        if rows:
            settings = next(iter(rows.values()))[1]
            return {m: row for m, (row, _, _) in rows.items()}, f"{settings['device_name']}, {settings['dtype']}"
    return {}, ""


def table_beyond(suite: str, groups: dict, profiles: list, profile: str) -> Table | None:
    """One row per added model and variant: test G, C, mIoU, BF at the selected iteration, parameters, GMACs per
    image, and forward time and training memory where `bench profile` measured the model; None without any."""
    if not groups:
        return None
    names = paper_names()
    rows, device = _profiled(profiles)
    notes = [BEYOND_NOTE, "Parameters and GMACs (multiply-accumulates per image at the run's input size) are the "
             "run record's; time and memory are `bench profile`'s" + (f" ({device})" if device else "")
             + ", \"not profiled\" where it has not measured the model (`bench profile --plugin FILE --models "
             "NAME`)."]
    t = Table(f"{suite.replace('-', '_')}_beyond", f"Beyond the paper: models added to {suite} ({profile} profile)",
              ["model", "variant", "n", "params (M)", "GMACs", *METRICS, "forward ms", "training memory MiB",
               "stopped"], notes=notes)
    for key in sorted(groups, key=lambda k: (k[1], k[2] or "")):
        recs = groups[key]
        member, variant = key[1], key[2]
        label = names.get(member, member)
        params = sorted({r["model"].get("params") for r in recs} - {None})
        gmacs = sorted({round(r["model"].get("gmacs_per_image") or 0, 2) for r in recs} - {0})
        cells = [label, variant or "–", len(recs), ", ".join(f"{p / 1e6:.3f}" for p in params) or "–",
                 ", ".join(f"{g:.2f}" for g in gmacs) or "–"]
        for m in METRICS:
            _ours_cell(t, cells, [r["test"][m] for r in recs], f"{label} [{variant}]", m, profile, like=True)
        row = rows.get(member)
        if row:
            mem = row.get("caffe_style_memory") or {}
            cells += [f"{row['forward']['median_ms']:.1f}", f"{mem['train_MiB']:.0f} (Caffe-style)" if mem else "–"]
        else:
            cells += ["not profiled", "not profiled"]
        t.rows.append(cells + [stop_cell(recs)])
        t.row_records.append(recs)
    return t
