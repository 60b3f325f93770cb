"""The paper's cost tables from `bench profile` records: Table 6 (memory and time of SegNet, FCN and DeepLab-LargeFOV,
with Caffe-style counts beside ours) and Table 1's cost columns of the decoder variants.
"""
from __future__ import annotations

from bench.architectures import paper_names
from bench.published import number, read_rows, row_by
from bench.records import latest_profile_rows, profile_sets
from bench.report.tables import Table, fmt

MIB_PER_MB = 1e6 / 2 ** 20  # profile records hold device memory in MB (10^6 bytes); Table 6 shows MiB
OLDER_REVISION = "‡"


def memory_key(settings) -> str:
    return "device_used_MB" if settings["device"].startswith("cuda") else "process_peak_rss_growth_MB"


def _measured_mib(mem: dict, key: str):
    """A measured memory figure of a profile row in MiB (None where this device has no such measure)."""
    return mem[key] * MIB_PER_MB if mem.get(key) is not None else None


def caffe_counts(profiles) -> dict:
    """{model: Caffe-style memory count} from the newest profile row of each model that has one, whatever device
    profiled it (a count traced on the meta device, not a measurement: `bench.caffe_memory`)."""
    out = {}
    for rec in sorted(profiles, key=lambda r: str(r.get("finished_at", ""))):
        for m in rec["models"]:
            if m.get("caffe_style_memory"):
                out[m["model"]] = m["caffe_style_memory"]
    return out


def table6(latest: dict, key: str = "table6", counted: dict | None = None) -> Table | None:
    """Table 6 from one group of profile rows (``bench.records.profile_sets``): one device, one precision. Memory
    three ways, in MiB: what PyTorch's allocator needed at its peak, the Caffe-style count (every layer output kept,
    as the paper's Caffe did), and what the device showed (nvidia-smi's reading, CUDA context included; on a CPU
    the growth of the process's resident set) beside the paper's nvidia-smi figure."""
    names = paper_names()
    members = [n for n in ("segnet", "deeplab-largefov", "fcn-learnt-deconv", "deconvnet") if n in latest]
    if not members:
        return None
    counted = counted or {}
    settings = latest[members[0]][1]
    gpu = settings["device"].startswith("cuda")
    used_key = memory_key(settings)
    t = Table(key, f"Table 6: compute time and resources ({settings['device_name']}, {settings['dtype']}, "
              f"{'x'.join(map(str, latest[members[0]][2]))}). Cells: ours / paper where the paper has the measure",
              ["network", ("time, ms", ["forward", "backward"]),
               ("training memory, MiB", ["allocator peak", "Caffe-style", "device" if gpu else "process RSS"]),
               ("inference memory, MiB", ["allocator peak", "Caffe-style", "device" if gpu else "process RSS"]),
               "model size MB", ("ratio to SegNet", ["forward", "inference Caffe-style"])],
              notes=["Paper: Table 6 (S1): Caffe on an NVIDIA Titan, times over 10 iterations at batch 1, memory from "
                     "nvidia-smi (training batch 4, inference batch 1), size of the caffemodel. Ratios are to SegNet "
                     "(ours / paper).",
                     "Memory in MiB (2^20 bytes, nvidia-smi's unit). Allocator peak: what PyTorch needed "
                     "(max_memory_allocated); device: total - free as nvidia-smi shows it, CUDA context included; "
                     "Caffe-style: every layer output kept in fp32 as Caffe holds it, plus the weights "
                     "(bench/caffe_memory.py; counted, so the same on any device), the measure comparable with the "
                     "paper's column and the one `bench check` judges the inference-memory claim on.",
                     *(["fp32 as PyTorch runs it: convolutions in TF32 (cudnn.allow_tf32, the default)."]
                       if gpu and settings.get("dtype") == "fp32" and settings.get("tf32_cudnn") else []),
                     "Absolute numbers depend on the hardware; the ratios between models are what compares."]
              + ([] if gpu else ["CPU profile: times and process memory of this CPU, not comparable with the paper's "
                                 "GPU."]))
    p_ref = row_by("table6", "network", "SegNet")
    ours_of = {}
    for m in members:
        r = latest[m][0]
        caffe = r.get("caffe_style_memory") or counted.get(m) or {}
        ours_of[m] = {"fwd": r["forward"]["median_ms"], "bwd": r["backward"]["median_ms"],
                      "train_alloc": _measured_mib(r["train_memory"], "allocator_peak_MB"),
                      "train_caffe": caffe.get("train_MiB"), "train": _measured_mib(r["train_memory"], used_key),
                      "infer_alloc": _measured_mib(r["inference_memory"], "allocator_peak_MB"),
                      "infer_caffe": caffe.get("inference_MiB"),
                      "infer": _measured_mib(r["inference_memory"], used_key),
                      "size": r["model_size_MB"]}
    ref = ours_of.get("segnet")
    for m in members:
        p = row_by("table6", "network", names[m]) or {}
        ours = ours_of[m]
        paper = {"fwd": number(p.get("forward_ms")), "bwd": number(p.get("backward_ms")),
                 "train": number(p.get("gpu_train_mem_MB")), "infer": number(p.get("gpu_infer_mem_MB")),
                 "size": number(p.get("model_size_MB"))}
        cells = [names[m] + _older_revision_mark(latest[m][0], m, t.notes)]
        for k in ("fwd", "bwd", "train_alloc", "train_caffe", "train", "infer_alloc", "infer_caffe", "infer", "size"):
            with_paper = k in paper
            cells.append(f"{fmt(ours[k], digits=1)}" + (f" / {fmt(paper[k], digits=1)}" if with_paper else ""))
            t.long.append({"table": key, "row": names[m], "column": k, "ours_mean": ours[k], "n": 1,
                           "paper": paper.get(k), "profile": settings["device"], "like_for_like": gpu})
        for k, pk in (("fwd", "forward_ms"), ("infer_caffe", "gpu_infer_mem_MB")):
            ours_ratio = ours[k] / ref[k] if ref and ref.get(k) and ours[k] is not None else None
            paper_ratio = (number(p.get(pk)) / number(p_ref[pk])) if p.get(pk) and p_ref else None
            cells.append(f"{fmt(ours_ratio)} / {fmt(paper_ratio)}")
        t.rows.append(cells)
    return t


def table6_tables(profiles) -> list[Table]:
    """Table 6 once per GPU precision measured (fp32, the paper's, first), else once from the newest CPU rows."""
    sets = profile_sets(profiles)
    gpu = [rows for (dev, _), rows in sets if dev == "cuda"] or [rows for _, rows in sets[:1]]
    counted = caffe_counts(profiles)
    tables = [table6(rows, "table6" if i == 0 else f"table6_{next(iter(rows.values()))[1].get('dtype')}", counted)
              for i, rows in enumerate(gpu)]
    return [t for t in tables if t]


def _older_revision_mark(row: dict, model: str, notes: list) -> str:
    """" ‡" where a profile row was measured on an older revision of its model than the registry's (the note added
    once): its costs are shown, marked, until the model is profiled again."""
    from bench import architectures
    if row.get("revision", 1) >= architectures.model_revision(model):
        return ""
    note = (f"{OLDER_REVISION} profiled at an older revision of the model (the layers or initialisation changed "
            "since: `bench.architectures.model_meta(name)['revisions']`); run `bench profile` again for its current costs.")
    if note not in notes:
        notes.append(note)
    return f" {OLDER_REVISION}"


def table1_costs(profiles) -> Table | None:
    """Table 1's cost columns: parameters, storage multiplier and inference time, ours beside the paper's."""
    from bench import architectures  # the registry's meta only; no model is built
    latest = latest_profile_rows(profiles)
    names = paper_names()
    order = [r["variant"] for r in read_rows("table1")]
    members = sorted((n for n in latest if names.get(n) in order), key=lambda n: order.index(names[n]))
    if not members:
        return None
    settings = latest[members[0]][1]
    t = Table("table1_costs", f"Table 1 cost columns ({settings['device_name']}, {settings['dtype']}, "
              f"{'x'.join(map(str, latest[members[0]][2]))}). Cells: ours / paper",
              ["variant", "trainable params (M)", "storage multiplier", "decoder keeps (first encoder)", "inference ms"],
              notes=["Paper: Table 1 (S1); inference time on an NVIDIA Titan (cuDNN v3), 360x480.",
                     "Storage multiplier: the paper's convention (pooling indices count as one map, feature maps as "
                     "their channel count), computed from the tensors the decoder actually keeps; the bytes are as "
                     "this implementation stores them (PyTorch keeps pool indices as int64)."]
              + ([] if settings["device"].startswith("cuda") else
                 ["CPU profile: times of this CPU, not comparable with the paper's GPU."]))
    for m in members:
        r = latest[m][0]
        p = row_by("table1", "variant", names[m]) or {}
        kept = r.get("decoder_storage") or {}
        trainable_m = (r.get("trainable_params") or architectures.model_facts(m).get("trainable_params")
                       or r["params"]) / 1e6
        t.rows.append([names[m] + _older_revision_mark(r, m, t.notes),
                       f"{trainable_m:.3f} / {p.get('params_M', '–')}",
                       f"{kept.get('multiplier_paper_convention', '–')} / {p.get('storage_mult', '–')}",
                       f"{kept.get('bytes', 0) / 1e6:.2f} MB: " + ("; ".join(kept.get("what", [])) or "nothing"),
                       f"{r['forward']['median_ms']:.1f} / {p.get('infer_ms', '–')}"])
        t.long.append({"table": "table1_costs", "row": names[m], "column": "inference_ms",
                       "ours_mean": r["forward"]["median_ms"], "n": 1, "paper": number(p.get("infer_ms")),
                       "profile": settings["device"], "like_for_like": settings["device"].startswith("cuda")})
    return t
