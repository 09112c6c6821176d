"""A small table model (column groups, row sections, cells with marks) and its renderers.

Leaderboards and ablation tables are built as ``Table`` objects and rendered to GitHub markdown,
LaTeX (booktabs) and HTML by the same code, so every format shows the same numbers, bold marks
and footnotes.
"""

from __future__ import annotations

import dataclasses
import html
import math

#: footnote marks; digits stand for references (superscript numbers)
MARK_LATEX = {"†": r"\dag", "‡": r"\ddag", "§": r"\S", "*": "*"}


@dataclasses.dataclass
class Cell:
    """One table cell: a main text (the value), an optional detail (interval) and note (counts)."""

    text: str = ""
    detail: str = ""
    note: str = ""
    bold: bool = False
    marks: tuple[str, ...] = ()
    #: extra text for HTML tooltips
    title: str = ""
    #: numeric value for sorting in HTML (None: sorts last)
    sort_value: float | None = None


@dataclasses.dataclass
class Column:
    label: str
    group: str = ""
    align: str = "r"


@dataclasses.dataclass
class Section:
    title: str
    rows: list[tuple[Cell, list[Cell]]] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class Table:
    title: str
    row_header: str
    columns: list[Column]
    sections: list[Section]
    notes: list[str] = dataclasses.field(default_factory=list)

    def check(self) -> None:
        for section in self.sections:
            for head, cells in section.rows:
                if len(cells) != len(self.columns):
                    raise ValueError(f"row {head.text!r} has {len(cells)} cells for {len(self.columns)} columns")


def format_number(value: float | None, decimals: int) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:.{decimals}f}"


def decimals_for(values: list[float]) -> int:
    """Digits after the point, from the typical magnitude of a column (FVD 1, FID/IS 2, CLIPSIM 4)."""
    finite = sorted(abs(v) for v in values if v is not None and math.isfinite(v))
    if not finite:
        return 2
    typical = finite[len(finite) // 2]
    if typical >= 100:
        return 1
    if typical >= 1:
        return 2
    return 4


# -------------------------------------------------------------------------------------------- markdown


def _md_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("*", "\\*").replace("_", "\\_")


def _md_marks(marks: tuple[str, ...]) -> str:
    return "".join(f"<sup>{m}</sup>" if m.isdigit() else m for m in marks)


def _md_cell(cell: Cell) -> str:
    if not cell.text:
        return ""
    text = _md_escape(cell.text)
    if cell.bold:
        text = f"**{text}**"
    text += _md_marks(cell.marks)
    if cell.detail:
        text += " " + _md_escape(cell.detail)
    if cell.note:
        text += f" <sub>{_md_escape(cell.note)}</sub>"
    return text


def _md_note(note: str) -> str:
    mark, _, rest = note.partition(" ")
    if mark.isdigit():
        return f"<sup>{mark}</sup> {_md_escape(rest)}"
    return _md_escape(note)


def to_markdown(table: Table) -> str:
    """GitHub-flavoured markdown: one header row (group and label joined by <br>), sections as bold rows."""
    table.check()
    heads = [_md_escape(table.row_header)]
    for col in table.columns:
        heads.append(f"{_md_escape(col.group)}<br>{_md_escape(col.label)}" if col.group else _md_escape(col.label))
    lines = [f"**{_md_escape(table.title)}**", "", "| " + " | ".join(heads) + " |",
             "|" + "|".join([":--"] + ["--:" if c.align == "r" else ":--" for c in table.columns]) + "|"]
    for section in table.sections:
        if section.title:
            lines.append(f"| *{_md_escape(section.title)}* |" + " |" * len(table.columns))
        for head, cells in section.rows:
            lines.append("| " + " | ".join([_md_cell(head)] + [_md_cell(c) for c in cells]) + " |")
    if table.notes:
        lines.append("")
        lines.extend(f"{_md_note(note)}  " for note in table.notes)
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------------------------- LaTeX

_LATEX_SPECIAL = {
    "\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{",
    "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "–": "--", "↑": r"$\uparrow$",
    "↓": r"$\downarrow$", "±": r"$\pm$", "×": r"$\times$", "<": r"\textless{}", ">": r"\textgreater{}",
}


def latex_escape(text: str) -> str:
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in text)


def _tex_marks(marks: tuple[str, ...]) -> str:
    if not marks:
        return ""
    return "$^{" + ",".join(m if m.isdigit() else MARK_LATEX.get(m, m) for m in marks) + "}$"


def _tex_cell(cell: Cell) -> str:
    if not cell.text:
        return ""
    text = latex_escape(cell.text)
    if cell.bold:
        text = rf"\textbf{{{text}}}"
    text += _tex_marks(cell.marks)
    extra = "; ".join(latex_escape(x) for x in (cell.detail, cell.note) if x)
    if extra:
        text += rf" {{\scriptsize {extra}}}"
    return text


def to_latex(table: Table) -> str:
    """A booktabs ``table`` float (needs ``\\usepackage{booktabs}``); notes go into the caption."""
    table.check()
    n = len(table.columns) + 1
    spec = "l" + "".join(c.align if c.align in "lrc" else "r" for c in table.columns)
    out = [r"% requires \usepackage{booktabs}", r"\begin{table}[t]", r"\centering", r"\small",
           rf"\begin{{tabular}}{{{spec}}}", r"\toprule"]
    groups: list[tuple[str, int, int]] = []  # (group, first column, last column), 1-based LaTeX columns
    for i, col in enumerate(table.columns, start=2):
        if groups and groups[-1][0] == col.group:
            groups[-1] = (col.group, groups[-1][1], i)
        else:
            groups.append((col.group, i, i))
    if any(g for g, _, _ in groups):
        parts, rules = [""], []
        for group, first, last in groups:
            width = last - first + 1
            parts.append(rf"\multicolumn{{{width}}}{{c}}{{{latex_escape(group)}}}" if width > 1 else latex_escape(group))
            if group:
                rules.append(rf"\cmidrule(lr){{{first}-{last}}}")
        out.append(" & ".join(parts) + r" \\")
        if rules:
            out.append(" ".join(rules))
    out.append(" & ".join([latex_escape(table.row_header)] + [latex_escape(c.label) for c in table.columns]) + r" \\")
    for k, section in enumerate(table.sections):
        out.append(r"\midrule")
        if section.title:
            out.append(rf"\multicolumn{{{n}}}{{l}}{{\textit{{{latex_escape(section.title)}}}}} \\")
            if k > 0 or len(table.sections) > 1:
                out.append(r"\addlinespace[2pt]")
        for head, cells in section.rows:
            out.append(" & ".join([_tex_cell(head)] + [_tex_cell(c) for c in cells]) + r" \\")
    out.append(r"\bottomrule")
    out.append(r"\end{tabular}")
    caption = latex_escape(table.title)
    if table.notes:
        caption += ". " + " ".join(_tex_note(note) for note in table.notes)
    out.append(rf"\caption{{{caption}}}")
    out.append(r"\end{table}")
    return "\n".join(out) + "\n"


def _tex_note(note: str) -> str:
    """Notes start with their mark (``† ...`` or ``1 ...``); the mark becomes a superscript."""
    mark, _, rest = note.partition(" ")
    if mark in MARK_LATEX or mark.isdigit():
        return _tex_marks((mark,)) + " " + latex_escape(rest)
    return latex_escape(note)


# ------------------------------------------------------------------------------------------------ HTML


def _html_cell(cell: Cell, tag: str = "td", cls: str = "") -> str:
    attrs = [f'class="{cls}"'] if cls else []
    if cell.title:
        attrs.append(f'title="{html.escape(cell.title)}"')
    if cell.sort_value is not None and math.isfinite(cell.sort_value):
        attrs.append(f'data-sort="{cell.sort_value!r}"')
    open_tag = f"<{tag}{' ' if attrs else ''}{' '.join(attrs)}>"
    if not cell.text:
        return f"{open_tag}</{tag}>"
    text = html.escape(cell.text)
    if cell.bold:
        text = f"<b>{text}</b>"
    if cell.marks:
        text += "".join(f"<sup>{html.escape(m)}</sup>" for m in cell.marks)
    if cell.detail:
        text += f' <span class="ci">{html.escape(cell.detail)}</span>'
    if cell.note:
        text += f' <span class="n">{html.escape(cell.note)}</span>'
    return f"{open_tag}{text}</{tag}>"


def to_html(table: Table, table_id: str = "") -> str:
    """An HTML fragment (a ``<table>`` with class ``report`` and its notes); one ``tbody`` per section."""
    table.check()
    ident = f' id="{html.escape(table_id)}"' if table_id else ""
    out = [f'<table class="report sortable"{ident}>', f"<caption>{html.escape(table.title)}</caption>", "<thead>"]
    if any(c.group for c in table.columns):
        row = ["<th></th>"]
        i = 0
        while i < len(table.columns):
            group = table.columns[i].group
            j = i
            while j < len(table.columns) and table.columns[j].group == group:
                j += 1
            row.append(f'<th colspan="{j - i}" class="group">{html.escape(group)}</th>')
            i = j
        out.append("<tr>" + "".join(row) + "</tr>")
    out.append("<tr>" + f"<th>{html.escape(table.row_header)}</th>"
               + "".join(f'<th class="col{" l" if c.align == "l" else ""}">{html.escape(c.label)}</th>'
                         for c in table.columns) + "</tr>")
    out.append("</thead>")
    for section in table.sections:
        out.append("<tbody>")
        if section.title:
            out.append(f'<tr class="section"><th colspan="{len(table.columns) + 1}">'
                       f"{html.escape(section.title)}</th></tr>")
        for head, cells in section.rows:
            out.append("<tr>" + _html_cell(head, "th") + "".join(
                _html_cell(c, cls="l" if col.align == "l" else "") for c, col in zip(cells, table.columns)) + "</tr>")
        out.append("</tbody>")
    out.append("</table>")
    if table.notes:
        out.append('<ul class="notes">' + "".join(f"<li>{html.escape(n)}</li>" for n in table.notes) + "</ul>")
    return "\n".join(out) + "\n"
