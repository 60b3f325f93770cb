"""The report's front page: a leaderboard of every suite, one row per run of the suite (recorded or not) with its
headline test scores beside the paper's, the profile and seeds behind them, how it stopped and `bench check`'s
verdicts; each suite's claims with their verdicts; links to each suite page, run record and log.
"""
from __future__ import annotations

import os
from collections import defaultdict
from pathlib import Path

from bench.architectures import paper_names
from bench.published import number, row_by
from bench.report.html import html_page, markdown_to_html
from bench.report.table import NOT_RUN, Cell, Table, metric_groups, records_cell
from bench.report.tables import (DELTA_NOTE, MEDIAN_FREQUENCY_LINE, VARIANT_PREFIX, _cells, _not_run_cells,
                                 band_marks, stop_cell)

HEADLINE = ("G", "mIoU", "BF")
VERDICT_KIND = {"pass": "verdict-pass", "fail": "verdict-fail", "differs": "verdict-differs", "not run": "verdict-not-run"}


def science_outcomes(rules: dict, training: list, profiles: list) -> list[dict]:
    """`bench check`'s bands and claims judged on these records as recorded (the gate re-scores the predictions
    too), acknowledged differences marked "differs"."""
    from bench.check import acknowledge, check_bands, check_claims, group_training, outdated_runs
    full = group_training(training, "full")
    return acknowledge(rules, check_bands(rules, full) + check_claims(rules, full, profiles, outdated_runs(training)))


def paper_headline(suite: str, tables: tuple, member: str, variant: str | None) -> dict:
    """{metric: the paper's test score} of a run, from the suite's first paper table (Table 1's column of its
    balancing, Table 3's and 4's "Max iter"); {} where the paper has none."""
    name = paper_names().get(member, member)
    if "table1" in tables and VARIANT_PREFIX.get(variant or ""):
        row, cols = row_by("table1", "variant", name), f"{VARIANT_PREFIX[variant]}_test_"
    elif "table3" in tables:
        row, cols = row_by("table3", "network", name), "itmax_"
    elif "table4" in tables:
        row = row_by("table4", "network", name + (MEDIAN_FREQUENCY_LINE if variant == "median-frequency" else ""))
        cols = "itmax_"
    else:
        return {}
    return {m: number(row.get(f"{cols}{m}", "")) for m in HEADLINE} if row else {}


def _band_verdict(outcomes: list[dict], rules: dict, suite: str, member: str, variant: str | None) -> Cell:
    """The band outcomes of one run as one cell: "band ✓ 4/4", "band ✗ 1/4 outside"; "–" where no band judges it."""
    ids = [b["id"] for b in rules.get("bands", []) if b["suite"] == suite and b.get("variant") == variant]
    mine = [o for o in outcomes for i in ids if o["rule"].startswith(f"{i}:{member}:")]
    judged = [o for o in mine if o["status"] in ("pass", "fail", "differs")]
    if not judged:
        return Cell("–", "verdict-not-run", "no tolerance band judges this run" if not ids else "not judged yet")
    passed = sum(o["status"] == "pass" for o in judged)
    worst = "fail" if any(o["status"] == "fail" for o in judged) else (
        "differs" if any(o["status"] == "differs" for o in judged) else "pass")
    mark = {"pass": "✓", "fail": "✗", "differs": "≈"}[worst]
    return Cell(f"band {mark} {passed}/{len(judged)}", VERDICT_KIND[worst],
                "; ".join(f"{o['rule'].rsplit(':', 1)[1]}: {o.get('short', o['detail'])}" for o in judged))


def leaderboard_table(suite: str, profile: str, groups: dict, outcomes: list, rules: dict, link_of: dict) -> Table:
    """One suite's leaderboard: every run of the suite a row, its headline test scores (at the iteration validation
    selected) beside the paper's."""
    from bench.report.render import declared_tables, suite_rows
    names, tables = paper_names(), declared_tables(suite)
    runs = suite_rows(suite)
    runs += sorted({(k[1], k[2]) for k in groups if k[0] == suite} - set(runs), key=lambda r: (r[0], r[1] or ""))
    t = Table(f"leaderboard-{suite}", f"Headline test scores, {profile} profile",
              ["run", "seeds", *metric_groups(HEADLINE), "stopped", "check", "records"])
    from bench.report.beyond import split_beyond
    _, beyond = split_beyond(suite, {(suite, m, v): None for m, v in runs})
    for member, variant in runs:
        label = names.get(member, member) + (f" [{variant}]" if variant else "") + (
            " (beyond the paper)" if (suite, member, variant) in beyond else "")
        papers = paper_headline(suite, tables, member, variant)
        recs = groups.get((suite, member, variant))
        if not recs:
            t.rows.append(_not_run_cells([label, "–"], [papers.get(m) for m in HEADLINE])
                          + [NOT_RUN, _band_verdict(outcomes, rules, suite, member, variant), Cell("–")])
            continue
        tolerance, acks = band_marks(suite, variant, member, profile)
        cells = [label, ", ".join(str(r.get("seed")) for r in recs)]
        for m in HEADLINE:
            _cells(t, cells, [r["test"][m] for r in recs], papers.get(m), label, m, profile,
                   tolerance=tolerance.get(m), acknowledged=acks.get(m, ""))
        t.rows.append(cells + [stop_cell(recs), _band_verdict(outcomes, rules, suite, member, variant),
                               records_cell(recs, link_of)])
    t.mark_best()
    return t


def claims_lines(outcomes: list, rules: dict, suite: str | None) -> list[str]:
    """One Markdown line per claim of ``suite`` (None: the claims on costs, which name no suite) with its verdict."""
    claims = [c for c in rules.get("claims", []) if c.get("suite") == suite]
    by_rule = {o["rule"]: o for o in outcomes}
    lines = []
    for c in claims:
        o = by_rule.get(c["id"], {"status": "not run", "detail": "no outcome"})
        lines.append(f"- **{o['status']}**: {c['text']} ({o.get('short', o['detail'])}; source: {c['source']})")
    return lines


def verdict_counts(outcomes: list, rules: dict, suite: str) -> str:
    """"3 pass, 1 fail, 2 not run" of a suite's bands and claims."""
    ids = [b["id"] for b in rules.get("bands", []) if b["suite"] == suite]
    ids += [c["id"] for c in rules.get("claims", []) if c.get("suite") == suite]
    mine = [o for o in outcomes if any(o["rule"] == i or o["rule"].startswith(i + ":") for i in ids)]
    counts = defaultdict(int)
    for o in mine:
        counts[o["status"]] += 1
    return ", ".join(f"{counts[s]} {s}" for s in ("pass", "fail", "differs", "not run") if counts[s]) or "no rules"


def leaderboard_page(shown: dict, training: list, profiles: list, out: Path, selection: str,
                     skipped: list, results: Path = Path("results")) -> tuple[str, str]:
    """The index as (Markdown, HTML). ``shown``: {suite: (profile, groups)} as each suite page shows them."""
    from bench.records import current_recipe
    from bench.check import load_rules
    rules = load_rules()
    outcomes = science_outcomes(rules, training, profiles)
    link_of = {id(r): Path(os.path.relpath(Path(p).resolve(), out.resolve())).as_posix() for p, r in training}
    md = ["# Results at a glance", "",
          "Every suite's runs with their headline test scores (at the iteration validation selected) beside the "
          f"paper's, rendered by `bench report` from the records under `{Path(results).as_posix()}/`"
          + (f", selected by {selection}" if selection else "") + ". Verdicts are `bench check`'s bands and claims "
          "judged on the records as recorded (`bench check` also re-scores every record's predictions). Each "
          "suite's page has the paper's tables in full, the figures and the recipe.", ""]
    md += ["| suite | paper tables | records shown | `bench check` |", "|---|---|---|---|"]
    from bench.report.render import declared_tables
    for suite, (profile, groups) in sorted(shown.items()):
        n = sum(len(v) for v in groups.values())
        tables = ", ".join(t.replace("table", "Table ").replace("-costs", " costs") for t in declared_tables(suite))
        md.append(f"| [{suite}]({suite}/README.md) | {tables or '–'} | {f'{n} ({profile})' if n else 'none yet'} | "
                  f"{verdict_counts(outcomes, rules, suite)} |")
    md.append("")
    html_parts = [markdown_to_html("\n".join(md)).replace("/README.md\"", "/index.html\"")]
    for suite, (profile, groups) in sorted(shown.items()):
        n = sum(len(v) for v in groups.values())
        earlier = sum(not current_recipe(r) for v in groups.values() for r in v)
        head = [f"## [{suite}]({suite}/README.md)", "",
                ("No record yet" if not n else f"{n} record(s) of the {profile} profile")
                + (f" ({earlier} under an earlier recipe of the suite)" if earlier else "")
                + f"; `bench check`: {verdict_counts(outcomes, rules, suite)}."
                + (" Smoke records: a few iterations at reduced size; their numbers say nothing about the paper."
                   if profile == "smoke" else ""), ""]
        from bench.report.tables import study_statements
        head += [f"- {line}." for line, _ in study_statements(suite)] + ([""] if study_statements(suite) else [])
        table = leaderboard_table(suite, profile, groups, outcomes, rules, link_of)
        claims = claims_lines(outcomes, rules, suite)
        tail = (["Claims of the paper judged on these records:", "", *claims, ""] if claims else [])
        md += head + [table.markdown()] + tail
        html_parts += [markdown_to_html("\n".join(head)).replace("/README.md\"", "/index.html\""), table.html(),
                       markdown_to_html("\n".join(tail))]
    costs = claims_lines(outcomes, rules, None)
    if costs:
        tail = ["## Costs (Table 6)", "", "Claims on memory and speed, judged on the `bench profile` records:", "",
                *costs, ""]
        md += tail
        html_parts.append(markdown_to_html("\n".join(tail)))
    notes = ["## Notes", "", f"- {DELTA_NOTE}", "- Headline paper numbers: Table 1's column of the run's balancing, "
             "Tables 3 and 4's \"Max iter\" column. Seeds: the seeds averaged (mean; the suite page shows ± std).", ""]
    if skipped:
        notes += ["Skipped (unusable files):", ""] + [f"- {line}" for line in skipped] + [""]
    md += notes
    html_parts.append(markdown_to_html("\n".join(notes)))
    return "\n".join(md) + "\n", html_page("Results at a glance", "", body_html="".join(html_parts))
