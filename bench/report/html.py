"""A report page, as Markdown (read on GitHub) and as self-contained HTML (tables with grouped headers and Δ
coloured by band, its Markdown rendered by markdown-it-py, figures embedded); a suite page's parts in one order."""
from __future__ import annotations

import base64
import html

from bench.report.table import page_notes, unique_anchors, write_csvs

HTML_TEMPLATE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>
body{{font-family:system-ui,sans-serif;max-width:1360px;margin:1.5em auto;padding:0 12px;color:#1f2328}}
table{{border-collapse:collapse;font-size:12px;margin-bottom:1.2em}}
td,th{{border:1px solid #d0d7de;padding:2px 5px;text-align:right;white-space:nowrap}}
th{{background:#f6f8fa;font-weight:600;white-space:normal}} th.group{{text-align:center;border-bottom:2px solid #8c959f}}
td:first-child,th:first-child{{text-align:left}} tbody tr:nth-child(even){{background:#fafbfc}}
td.in-band{{color:#1a7f37;font-weight:600}} td.out-of-band{{color:#cf222e;font-weight:600}}
td.acknowledged{{color:#9a6700;font-weight:600}} td.not-run{{color:#8c959f;font-style:italic}}
td.verdict-pass{{color:#1a7f37}} td.verdict-fail{{color:#cf222e;font-weight:600}}
td.verdict-differs{{color:#9a6700}} td.verdict-not-run{{color:#8c959f}}
img{{max-width:100%}} h3{{font-size:1em;margin-top:1.6em}}
blockquote{{margin:1em 0;padding:.6em 1em;background:#fff3cd;border:2px solid #d39e00;font-size:1.05em}}
</style></head>
<body data-ok="0">
{body}
<script>
window.addEventListener("error", function () {{ document.body.dataset.error = "1"; }});
window.addEventListener("load", function () {{
  var imgs = Array.prototype.slice.call(document.images);
  document.body.dataset.images = imgs.length;
  document.body.dataset.ok = imgs.every(function (i) {{ return i.complete && i.naturalWidth > 0; }}) ? "1" : "0";
  var right = 0, tables = document.querySelectorAll("table");
  var wide = [];
  for (var t = 0; t < tables.length; t++) {{
    var r = Math.ceil(tables[t].getBoundingClientRect().right);
    right = Math.max(right, r);
    var h = tables[t].previousElementSibling;
    if (r > window.innerWidth) {{ wide.push((h ? h.textContent.slice(0, 60) : "table " + t) + " (" + r + " px)"); }}
  }}
  document.body.dataset.tableRight = right;
  document.body.dataset.tooWide = wide.join(" | ");
  document.body.dataset.viewport = window.innerWidth;
}});
</script></body></html>
"""


def markdown_to_html(md: str, images: dict | None = None) -> str:
    """A report's Markdown as HTML (CommonMark with tables, by markdown-it-py; raw HTML in the Markdown is
    escaped). ``images``: {file name: PNG bytes} embedded as data URIs, so the page stands alone."""
    from markdown_it import MarkdownIt
    body = MarkdownIt("commonmark", {"html": False}).enable("table").render(md)
    for name, png in (images or {}).items():
        body = body.replace(f'src="{name}"', f'src="data:image/png;base64,{base64.b64encode(png).decode()}"')
    return body


def html_page(title: str, md: str, images: dict | None = None, body_html: str | None = None) -> str:
    """A page from its Markdown, or from ``body_html`` already rendered."""
    body = body_html if body_html is not None else markdown_to_html(md, images)
    return HTML_TEMPLATE.format(title=html.escape(title), body=body)


def suite_page(title: str, header: list[str], tables: list, out_dir, figures=(), tail: list[str] = (),
               first_notes: list[str] = ()) -> tuple[str, str]:
    """A suite page as (Markdown, HTML): the header lines, the tables (grouped headers in HTML), their notes
    once, the figures [(file name, title, PNG)], the ``tail`` lines and the CSVs, written into ``out_dir``."""
    unique_anchors(tables)
    csvs = write_csvs(tables, out_dir)
    notes = list(dict.fromkeys([*first_notes, *page_notes(tables)]))
    head_md = "\n".join(header) + "\n"
    notes_md = ("## Notes\n\n" + "\n".join(f"- {n}" for n in notes) + "\n") if notes else ""
    rest = ""
    if figures:
        rest += "\n## Figures\n\n" + "\n".join(f"### {t}\n\n![{t}]({name})\n" for name, t, _ in figures)
    if tail:
        rest += "\n" + "\n".join(f"- {m}" for m in tail) + "\n"
    if csvs:
        rest += "\nCSV: " + ", ".join(f"[{c}]({c})" for c in csvs) + "\n"
    tables_md = ("\n## Tables\n\n" + "\n".join(t.markdown() for t in tables) + "\n") if tables else ""
    md = head_md + tables_md + notes_md + rest
    images = {name: png for name, _, png in figures}
    body = (markdown_to_html(head_md) + ("<h2>Tables</h2>\n" + "".join(t.html() for t in tables) if tables else "")
            + markdown_to_html(notes_md + rest, images))
    return md, html_page(title, md, body_html=body)
