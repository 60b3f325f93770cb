"""`bench report`: the paper's tables and figures from recorded runs, ours beside the published numbers.

For each suite with records it writes `<out>/<suite>/README.md` (Markdown tables and PNG figures, readable on
GitHub), a self-contained `index.html` (figures embedded), and a CSV of every table. Numbers are the mean ±
standard deviation over seeds of one profile; smoke-profile records are rendered too, marked as such (their
numbers come from a few iterations at reduced resolution and say nothing about the paper).
Reads records, prediction PNGs and (for the qualitative figure) the dataset; no model or training code.
"""
from __future__ import annotations

import os
from collections import defaultdict
from pathlib import Path

from bench.errors import BenchError
from bench.report.costs import table1_costs, table6_tables
from bench.report.figures import (figure_confusion, figure_curves, figure_losses, figure_per_class, figure_qualitative,
                                  figure_tradeoff, paper_points)
from bench.report.html import html_page, suite_page
from bench.report.tables import DELTA_NOTE, NOT_RUN, budget_tables, table1, table2, table5, table_selected
from bench.stopping import stop_of

def _suite_file(suite: str) -> Path | None:
    from bench.config import load_suite
    try:
        return Path(load_suite(suite).path).resolve()
    except Exception:  # a suite of records whose TOML is not in this checkout
        return None


def suite_rows(suite: str) -> list[tuple[str, str | None]]:
    """(member, variant) of every run of a suite, in the suite's order (variant-major); [] for a suite whose TOML is
    not in this checkout."""
    from bench.config import load_suite
    try:
        spec = load_suite(suite)
    except BenchError:
        return []
    return [(m, v) for v, m in spec.runs()]


def _runs_without_records(suite: str, groups: dict) -> list[str]:
    """The suite's (member, variant) runs with no record among ``groups``, member by member."""
    rows = suite_rows(suite)
    members = list(dict.fromkeys(m for m, _ in rows))
    return [m + (f" [{v}]" if v else "") for m, v in sorted(rows, key=lambda r: members.index(r[0]))
            if (suite, m, v) not in groups]


def _outdated(recs, paths) -> list:
    from bench.records import standing
    return [(p, r) for p, r in zip(paths, recs) if standing(r) == "outdated-model"]


def shown_records(recs, paths):
    """What a suite's page shows of its records: (profile, {profile: [(path, record)]}, recipe sets, groups,
    paths by group), the full profile where it has records; None where no record is usable (all outdated)."""
    from bench.records import standing
    usable = [(p, r) for p, r in zip(paths, recs) if standing(r) != "outdated-model"]
    if not usable:
        return None
    by_profile = defaultdict(list)
    for p, r in usable:
        by_profile[r["profile"]].append((p, r))
    profile = "full" if "full" in by_profile else sorted(by_profile)[0]
    sets = recipe_sets(by_profile[profile])
    groups, gpaths = figure_groups(sets)
    return profile, by_profile, sets, groups, gpaths


def render_suite(suite, recs, paths, profiles, out_dir: Path, data_root=None, skipped: list | None = None,
                 superseded: list | None = None, selection: str = "", link_base: Path | None = None,
                 shown=False, previous: Path | None = None, kept: list | None = None) -> Path:
    """One suite's report into ``out_dir``; table rows link their records relative to ``link_base`` (where the
    report will finally live; default ``out_dir``). ``shown``: `shown_records` of these records where the caller
    has it already. ``previous``: the suite's folder of the report being replaced, whose figures that cannot be
    drawn now (no dataset under the data root) are kept, each added to ``kept``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    shown = shown_records(recs, paths) if shown is False else shown
    if shown is None:
        return _render_without_records(suite, out_dir, link_base, _outdated(recs, paths))
    profile, by_profile, sets, groups, gpaths = shown
    outdated = _outdated(recs, paths)
    tables = []
    from bench.report.beyond import split_beyond, table_beyond
    for i, (heading, set_groups, _) in enumerate(sets):
        own, beyond = split_beyond(suite, set_groups)  # models added to the suite: rows of their own
        set_tables = [t for t in [*paper_tables(suite, own, profile), table_beyond(suite, beyond, profiles, profile)]
                      if t]
        if heading:  # records of an earlier recipe: their own tables, never pooled with current ones
            for t in set_tables:
                t.key, t.title = f"{t.key}_earlier{i}", f"{t.title}. {heading}"
        tables += set_tables + (cost_tables(suite, profiles) if i == 0 else [])
        if i == 0 and profile != "smoke":
            from bench.report.speed import table_speed
            tables += [t for t in [table_speed(suite, set_groups)] if t]
    link_of = {id(r): Path(os.path.relpath(Path(p).resolve(), Path(link_base or out_dir).resolve())).as_posix()
               for p, r in zip(paths, recs)}
    for t in tables:
        t.link_records(link_of)
    skipped = skipped if skipped is not None else []
    figures, missing = suite_figures(suite, groups, gpaths, profiles, data_root, skipped, previous, kept)
    for name, _, png in figures:
        (out_dir / name).write_bytes(png)
    header = suite_header(suite, groups, profile, out_dir, link_base, list(by_profile), selection, sets, outdated,
                          [(r, new) for _, r, new in superseded or [] if r["profile"] == profile],
                          source=records_folder(paths))
    missing += [f"Skipped: {line}" for line in skipped if f"/{suite}/" in line or "/profile/" in line]
    md, page = suite_page(suite, header, tables, out_dir, figures, missing, first_notes=_delta_note(tables))
    (out_dir / "README.md").write_text(md)
    (out_dir / "index.html").write_text(page)
    return out_dir


def _delta_note(tables) -> list[str]:
    """The page's note on Δ and its marks, where a table has a paper column."""
    return [DELTA_NOTE] if any("Δ" in " ".join(t.header) for t in tables) else []


def suite_figures(suite: str, groups: dict, gpaths: dict, profiles: list, data_root, skipped: list,
                  previous: Path | None = None, kept: list | None = None):
    """A suite page's figures as (file name, title, PNG bytes), and a line for each that could not be drawn;
    unreadable predictions drawn blank are added to ``skipped``. The qualitative grid needs the dataset's images:
    without them, the one in ``previous`` (the report being replaced) is kept as it is and named in ``kept``."""
    from bench import datasets
    tables = declared_tables(suite)
    figures = [("curves.png", "Validation scores against iterations, the paper's beside",
                figure_curves(groups, paper_points(tables, groups)))]
    losses = figure_losses(groups, gpaths)
    if losses:
        figures.append(("loss.png", "Training loss", losses))
    class_names = list(next(iter(groups.values()))[0]["test"]["per_class"])
    dataset_name = next(iter(groups.values()))[0]["dataset"]
    figures.append(("per_class.png", "Per-class test accuracy, the paper's SegNet beside",
                    figure_per_class(groups, class_names, dataset_name)))
    figures.append(("confusion.png", "Test confusion matrices", figure_confusion(groups, class_names)))
    with_paper = "table3" in tables  # the paper's trade-off points are Table 3's networks
    trade, missing = figure_tradeoff(groups, profiles, with_paper=with_paper)
    if trade:
        figures.append(("tradeoff.png", "Accuracy against inference memory, ours and the paper's"
                        if with_paper else "Accuracy against inference memory", trade))
    else:
        missing.append("Accuracy against inference memory: no profile record (run `bench profile`).")
    try:
        ds = datasets.get_dataset(dataset_name, data_root)
        ds.samples("test")  # its images are there
    except Exception:
        ds = None
    qual = figure_qualitative(groups, gpaths, ds, problems=skipped) if ds else None
    earlier = previous / "qualitative.png" if previous is not None and ds is None else None
    if not qual and earlier is not None and earlier.is_file():  # never lose a figure we cannot redraw here
        qual = earlier.read_bytes()
        if kept is not None:
            kept.append(earlier)
    if qual:
        figures.append(("qualitative.png", f"Test images, ground truth and predictions ({dataset_name} colours)", qual))
    else:
        missing.append("Qualitative grid: the dataset was not found under the data root.")
    return figures, missing


def records_folder(paths) -> str:
    """Where a suite's records were read (``<results>/<suite>/``), relative to the working folder where under it."""
    folders = sorted({Path(p).resolve().parents[2] for p in paths})
    if not folders:
        return "?"
    try:
        shown = folders[0].relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        shown = folders[0].as_posix()
    return shown + "/" + (f" (and {len(folders) - 1} more)" if len(folders) > 1 else "")


def suite_header(suite: str, groups: dict, profile: str, out_dir: Path, link_base, profiles_recorded: list,
                 selection: str, sets: list, outdated: list, older: list, source: str = "") -> list[str]:
    """The lines above a suite page's tables: what the records are, the recipe, and what is not shown; ``source``:
    the folder the records were read from (`records_folder`)."""
    from bench.records import made_from_uncommitted_code, outdated_model
    seeds = sorted({r["seed"] for rs in groups.values() for r in rs})
    commits = sorted({(r["provenance"]["git"]["commit"] or "unknown")[:10] for rs in groups.values() for r in rs})
    header = [f"# {suite}: ours beside the paper", "",
              f"Profile **{profile}**, seeds {', '.join(map(str, seeds))}, {sum(len(v) for v in groups.values())} "
              f"records, commits {', '.join(commits)}. Rendered by `bench report` from `{source or 'results/' + suite + '/'}`.",
              ""]
    suite_file = _suite_file(suite)
    if suite_file is not None:
        rel = Path(os.path.relpath(suite_file, Path(link_base or out_dir).resolve())).as_posix()
        header += [f"Recipe: [{suite_file.name}]({rel}) (the suite's TOML, sources in its comments); each record's "
                   "run.json holds the config it ran with, and its log (where linked) the lines the run printed.", ""]
    dirty = [r for rs in groups.values() for r in rs if made_from_uncommitted_code(r)]
    if dirty:
        header += [f"> **Made from uncommitted code**: {len(dirty)} record(s) ("
                   + ", ".join(f"{r['member']} {r['run_id']}" for r in dirty) + "): the code differed from the commit "
                   "they name (`provenance.git.dirty`), so that commit alone does not reproduce them.", ""]
    if profile == "smoke":
        header += ["> **Smoke records**: a few iterations at reduced resolution on a CPU. They show that the harness "
                   "runs end to end; their numbers say nothing about the paper.", ""]
    else:
        absent = _runs_without_records(suite, groups)
        if absent:
            header += [f"> **Partial**: no {profile}-profile record yet of {', '.join(absent)} (their rows read "
                       f"\"{NOT_RUN}\").", ""]
    other = [p for p in profiles_recorded if p != profile]
    if other:
        header += [f"Records of other profiles not shown: {', '.join(other)}.", ""]
    if selection:
        header += [f"Records selected by {selection}.", ""]
    if sets[0][0]:
        header += [f"> **No {profile}-profile record under the suite's current recipe yet**: the tables below show "
                   "records made under earlier recipes, each set under its own recipe.", ""]
    if outdated:
        header += [f"{len(outdated)} record(s) made with an older revision of their model are superseded and not "
                   "shown: " + "; ".join(f"{r['member']} {r['run_id']} ({outdated_model(r)})" for _, r in outdated)
                   + ".", ""]
    if older:
        header += [f"{len(older)} older record(s) of the same seed and recipe are not pooled (the latest wins): "
                   + "; ".join(f"{r['member']} {r['run_id']} (replaced by {new.parent.name})" for r, new in older)
                   + ".", ""]
    return header


def declared_tables(suite: str) -> tuple:
    """The paper's tables a suite reproduces, as its TOML names them (`tables`); () for a suite of records whose
    TOML is not in this checkout."""
    from bench.config import load_suite
    try:
        return load_suite(suite).tables
    except BenchError:
        return ()


def paper_tables(suite: str, groups: dict, profile: str) -> list:
    """The paper's tables a suite reproduces, from one set of records ({(suite, member, variant): [records]}), in
    the order its TOML names them; a suite that names none gets the table of its selected test scores."""
    builders = {"table1": lambda: table1(groups, profile, suite),
                "table2": lambda: [table2(groups, profile, suite)],
                "table3": lambda: budget_tables(groups, profile, suite, "table3"),
                "table4": lambda: budget_tables(groups, profile, suite, "table4"),
                "table5": lambda: [table5(groups, profile, suite)]}
    names = [n for n in declared_tables(suite) if n in builders]
    return [t for n in names for t in builders[n]()] if names else [table_selected(groups, profile, suite)]


def cost_tables(suite: str, profiles: list) -> list:
    """The cost tables a suite names (Table 6, Table 1's cost columns) from `bench profile` records."""
    builders = {"table6": lambda: table6_tables(profiles), "table1-costs": lambda: [table1_costs(profiles)]}
    return [t for n in declared_tables(suite) if n in builders for t in builders[n]() if t]


def recipe_sets(items) -> list[tuple[str, dict, dict]]:
    """Records of one profile as sets never pooled with each other: first those of the suite's current recipe (per
    run, the newest recipe where several were run), then one set per earlier recipe, each with a heading naming
    the recipe values it was recorded with. Each set: (heading, {key: [records]}, {key: [paths]})."""
    from bench.records import current_recipe, recipe_changes, recipe_fingerprint
    by_set = defaultdict(lambda: defaultdict(list))
    for p, r in items:
        key = (r["suite"], r["member"], r.get("variant"))
        if current_recipe(r):
            label = ""
        else:
            recorded = r.get("config") or {}
            then = [c.split(" -> ")[0] for c in recipe_changes(r)]
            then = [c for c in then if c.split(" ")[0] in recorded and not c.endswith((" None", " []", " ()"))]
            label = (f"Earlier recipe: recorded with {', '.join(then)}, stopping by {stop_of(r)['rule_text']} "
                     "(today's recipe differs)")
        by_set[label][key].append((recipe_fingerprint(r), str(r.get("finished_at")), p, r))
    out = []
    for label in sorted(by_set):  # "" (current) first
        groups, gpaths = {}, {}
        for key, entries in by_set[label].items():
            newest = max(entries, key=lambda e: e[1])[0]  # one recipe per run in a set: the newest
            kept = [(p, r) for fp, _, p, r in entries if fp == newest]
            groups[key], gpaths[key] = [r for _, r in kept], [p for p, _ in kept]
        out.append((label, groups, gpaths))
    return out


def figure_groups(sets) -> tuple[dict, dict]:
    """The records the figures draw: the current recipe's, and for runs it lacks the first earlier set's."""
    groups, gpaths = {}, {}
    for _, set_groups, set_paths in sets:
        for key in set_groups:
            if key not in groups:
                groups[key], gpaths[key] = set_groups[key], set_paths[key]
    return groups, gpaths


def _render_without_records(suite: str, out_dir: Path, link_base: Path | None, outdated=()) -> Path:
    """The page of a suite with no usable record yet: its paper tables, ours "not run"."""
    from bench.records import outdated_model
    from bench.report.tables import study_statements
    tables = [t for t in paper_tables(suite, {}, "full") if t]
    stated = study_statements(suite)
    what = (f"the tables show the paper's numbers with \"{NOT_RUN}\" for ours" if tables else
            "what its source states is below, ours not run" if stated else "nothing to show")
    header = [f"# {suite}: ours beside the paper", "", f"No record of this suite yet: {what}. Run "
              f"`bench run --suite {suite}` and render again.", ""]
    header += [f"- {line} ({source})." for line, source in stated] + ([""] if stated else [])
    if outdated:
        header += [f"{len(outdated)} record(s) made with an older revision of their model are superseded and not "
                   "shown: " + "; ".join(f"{r['member']} {r['run_id']} ({outdated_model(r)})" for _, r in outdated)
                   + ".", ""]
    suite_file = _suite_file(suite)
    if suite_file is not None:
        rel = Path(os.path.relpath(suite_file, Path(link_base or out_dir).resolve())).as_posix()
        header += [f"Recipe: [{suite_file.name}]({rel}) (the suite's TOML, sources in its comments).", ""]
    md, page = suite_page(suite, header, tables, out_dir, first_notes=_delta_note(tables))
    (out_dir / "README.md").write_text(md)
    (out_dir / "index.html").write_text(page)
    return out_dir


def render_reports(results="results", out="reports", data_root=None, problems: list | None = None,
                   profile: str | None = None, commit: str | None = None, since: str | None = None,
                   runs: str | None = None, kept: list | None = None) -> list[Path]:
    """Renders every suite's report into a temporary folder beside ``out`` and swaps it in at the end, so a
    failure never leaves an output that mixes old and new. Unusable records or profiles are skipped, each with
    one line naming the file, appended to ``problems`` and listed in the report. A figure that cannot be drawn
    without the dataset (no data root) is kept from the report being replaced, never deleted; each is appended to
    ``kept``.

    Only the records matching ``profile``, ``commit``, ``since`` and ``runs`` are shown (see
    `bench.records.select_records`); of several records of the same seed and recipe the latest is shown and
    the report names the others."""
    import shutil
    from bench.records import latest_per_seed, load_profiles, load_records, select_records
    from bench.safety import write_error
    results, out = Path(results), Path(out)
    if not results.is_dir():
        raise BenchError(f"{results}: results folder not found")
    training, skipped = load_records(results)
    selected = select_records(training, profile, commit, since, runs)
    selection = ", ".join(f"--{k} {v}" for k, v in (("profile", profile), ("commit", commit), ("since", since),
                                                     ("runs", runs)) if v)
    if selection and training and not selected:  # a typo in a filter must not render an empty report silently
        raise BenchError(f"{results}: none of its {len(training)} training records match {selection}; nothing "
                         f"rendered, {out} left as it was (`bench runs` lists the records)")
    training, superseded = latest_per_seed(selected)
    profiles, bad_profiles = load_profiles(results)
    skipped += bad_profiles
    profiles.sort(key=lambda r: (r["settings"]["device"].startswith("cuda"), r.get("finished_at", "")))
    from bench.config import list_suites
    # every suite is rendered before its first record too ("not run" beside the paper's or its study's numbers)
    suites = defaultdict(list, {s: [] for s in list_suites()})
    for p, r in training:
        suites[r["suite"]].append((p, r))
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    old = out.parent / f".{out.name}.old-{os.getpid()}"
    try:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        written, shown = [], {}
        for suite, items in sorted(suites.items()):
            recs, paths = [r for _, r in items], [p for p, _ in items]
            got = shown_records(recs, paths)
            render_suite(suite, recs, paths, profiles, tmp / suite, data_root,
                         skipped=skipped, superseded=[o for o in superseded if o[1]["suite"] == suite],
                         selection=selection, link_base=out / suite, shown=got, previous=out / suite, kept=kept)
            written.append(out / suite)
            shown[suite] = (got[0], got[3]) if got else ("full", {})
        from bench.report.index import leaderboard_page
        md, page = leaderboard_page(shown, training, profiles, out, selection, skipped, results)
        (tmp / "README.md").write_text(md)
        (tmp / "index.html").write_text(page)
        if out.exists():
            os.rename(out, old)
        os.rename(tmp, out)
    except BaseException as exc:  # put the previous report back whole
        shutil.rmtree(tmp, ignore_errors=True)
        if old.exists() and not out.exists():
            os.rename(old, out)
        if isinstance(exc, OSError):
            raise write_error(out / "README.md", exc, "the report") from None
        raise
    shutil.rmtree(old, ignore_errors=True)
    if problems is not None:
        problems.extend(skipped)
    return written
