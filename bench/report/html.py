"""A report page as self-contained HTML: its Markdown rendered by markdown-it-py, figures embedded."""
from __future__ import annotations

import base64
import html

HTML_TEMPLATE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>body{{font-family:sans-serif;max-width:1200px;margin:2em auto;padding:0 1em}}table{{border-collapse:collapse;
font-size:12px;margin-bottom:1em}}td,th{{border:1px solid #ccc;padding:2px 6px;text-align:right}}th{{background:#eee}}
img{{max-width:100%}}td:first-child,th:first-child{{text-align:left}}
blockquote{{margin:1em 0;padding:.6em 1em;background:#fff3cd;border:2px solid #d39e00;font-size:1.1em}}</style></head>
<body data-ok="0">
{body}
<script>
window.addEventListener("error", function () {{ document.body.dataset.error = "1"; }});
window.addEventListener("load", function () {{
  var imgs = Array.prototype.slice.call(document.images);
  document.body.dataset.images = imgs.length;
  document.body.dataset.ok = imgs.every(function (i) {{ return i.complete && i.naturalWidth > 0; }}) ? "1" : "0";
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


def html_page(title: str, md: str, images: dict | None = None) -> str:
    return HTML_TEMPLATE.format(title=html.escape(title), body=markdown_to_html(md, images))
