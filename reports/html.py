"""One self-contained HTML file: tables, plots and sample grids inlined (images as base64 data URIs).

The file loads nothing from anywhere, so it can be mailed, attached to an issue or opened offline.
A few lines of script sort a table by a column when its header is clicked.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence
from pathlib import Path

from evalkit.reports.tables import Table, to_html

STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 2em auto; max-width: 1400px;
       padding: 0 1em; color: #1b1b1b; line-height: 1.4; }
h1 { font-size: 1.6em; } h2 { font-size: 1.25em; border-bottom: 1px solid #ddd; padding-bottom: .2em; margin-top: 2em; }
table.report { border-collapse: collapse; margin: 1em 0; font-size: 0.88em; }
table.report caption { text-align: left; font-weight: 600; padding-bottom: .4em; }
table.report th, table.report td { padding: .3em .6em; border-bottom: 1px solid #e5e5e5; text-align: right;
       vertical-align: top; }
table.report th:first-child, table.report .l { text-align: left; font-weight: 500; }
table.report thead th { border-bottom: 2px solid #444; background: #fafafa; }
table.report thead th.col { cursor: pointer; }
table.report th.group { text-align: center; }
table.report tr.section th { text-align: left; font-style: italic; background: #f2f4f7; font-weight: 500; }
table.report .ci { color: #555; font-size: 0.9em; }
table.report .n { color: #888; font-size: 0.8em; display: block; }
ul.notes { font-size: 0.82em; color: #444; margin-top: 0; }
.warning { background: #fff4e5; border-left: 4px solid #f0a020; padding: .5em 1em; margin: 1em 0; }
figure { margin: 1em 0; } figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { font-size: 0.85em; color: #555; }
code { background: #f4f4f4; padding: 0 .2em; }
"""

# Sorts the rows of each tbody of a table by the clicked column (numbers from data-sort, else text).
SCRIPT = """
document.querySelectorAll("table.sortable").forEach(function (table) {
  var heads = table.querySelectorAll("thead tr:last-child th");
  heads.forEach(function (th, col) {
    if (col === 0) { return; }
    th.addEventListener("click", function () {
      var asc = th.getAttribute("data-order") !== "asc";
      heads.forEach(function (h) { h.removeAttribute("data-order"); });
      th.setAttribute("data-order", asc ? "asc" : "desc");
      table.querySelectorAll("tbody").forEach(function (body) {
        var rows = Array.prototype.filter.call(body.rows, function (r) { return !r.classList.contains("section"); });
        rows.sort(function (a, b) {
          var x = a.cells[col] ? a.cells[col].getAttribute("data-sort") : null;
          var y = b.cells[col] ? b.cells[col].getAttribute("data-sort") : null;
          if (x === null && y === null) { return 0; }
          if (x === null) { return 1; }
          if (y === null) { return -1; }
          return asc ? parseFloat(x) - parseFloat(y) : parseFloat(y) - parseFloat(x);
        });
        rows.forEach(function (r) { body.appendChild(r); });
      });
    });
  });
});
window.addEventListener("load", function () {
  Array.prototype.forEach.call(document.images, function (img) {
    if (!img.complete || img.naturalWidth === 0) { console.error("report image did not decode: " + img.alt); }
  });
});
document.documentElement.setAttribute("data-report-ready", "1");
"""


def image_data_uri(path: Path) -> str:
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    return f"data:image/png;base64,{data}"


def figure_html(path: Path, caption: str) -> str:
    return (f'<figure><img alt="{html.escape(caption)}" src="{image_data_uri(path)}">'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>")


def render_html(
    title: str,
    *,
    summary: Table | None = None,
    warnings: Sequence[str] = (),
    sections: Sequence[tuple[str, Sequence[Table | tuple[Path, str] | str]]] = (),
) -> str:
    """The whole report; each section is (heading, items) where an item is a table, an image
    ``(path, caption)`` or a paragraph of text."""
    body = [f"<h1>{html.escape(title)}</h1>"]
    if summary is not None:
        body.append(to_html(summary, "runs"))
    for text in warnings:
        body.append(f'<div class="warning">{html.escape(text)}</div>')
    for k, (heading, items) in enumerate(sections):
        if not items:
            continue
        body.append(f"<h2>{html.escape(heading)}</h2>")
        for j, item in enumerate(items):
            if isinstance(item, Table):
                body.append(to_html(item, f"t{k}-{j}"))
            elif isinstance(item, tuple):
                body.append(figure_html(item[0], item[1]))
            else:
                body.append(f"<p>{html.escape(str(item))}</p>")
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
            "<link rel=\"icon\" href=\"data:,\">\n"
            f"<title>{html.escape(title)}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n"
            + "\n".join(body)
            + f"\n<script>{SCRIPT}</script>\n</body>\n</html>\n")
