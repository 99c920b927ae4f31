"""Render small tables (header + rows of text cells) as markdown or LaTeX.

The report layer keeps numbers as data and formats them once, here, so the markdown
printed to the terminal, the ``.md`` files and the ``.tex`` files always agree.
"""

from __future__ import annotations

from collections.abc import Sequence

_LATEX_SPECIALS = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"$\sim$",
    "^": r"\^{}",
}
_UNICODE_LATEX = {
    "±": r"$\pm$",
    "↑": r"$\uparrow$",
    "↓": r"$\downarrow$",
    "∼": r"$\sim$",
    "≥": r"$\geq$",
    "≤": r"$\leq$",
    "†": r"$^\dagger$",
    "µ": r"$\mu$",
    "×": r"$\times$",
    ">>": r"$\gg$",
    "<": r"$<$",
    ">": r"$>$",
}


def latex_escape(text: object) -> str:
    """Escape a cell for LaTeX (specials, and the few unicode signs the tables use)."""
    out = "".join(_LATEX_SPECIALS.get(ch, ch) for ch in str(text))
    for sym, rep in _UNICODE_LATEX.items():
        out = out.replace(sym, rep)
    return out


def md_escape(text: object) -> str:
    """Escape the characters markdown would read as table syntax or emphasis."""
    return str(text).replace("|", "\\|").replace("*", "\\*").replace("\n", " ")


def to_markdown(
    headers: Sequence[str],
    rows: Sequence[Sequence[object]],
    *,
    title: str | None = None,
    notes: Sequence[str] = (),
) -> str:
    """A GitHub-flavoured markdown table, optional bold title line above and notes below."""
    lines: list[str] = []
    if title:
        lines += [f"**{title}**", ""]
    lines.append("| " + " | ".join(md_escape(h) for h in headers) + " |")
    lines.append("|" + "|".join("---" for _ in headers) + "|")
    for row in rows:
        lines.append("| " + " | ".join(md_escape(c) for c in row) + " |")
    if notes:
        lines.append("")
        lines += [f"{md_escape(n)}  " for n in notes]
    return "\n".join(lines) + "\n"


def to_latex(
    headers: Sequence[str],
    rows: Sequence[Sequence[object]],
    *,
    caption: str = "",
    label: str = "",
    notes: Sequence[str] = (),
    align: str | None = None,
) -> str:
    """A ``table`` environment with booktabs rules; the first column left-aligned."""
    align = align or ("l" + "r" * (len(headers) - 1))
    out = [r"\begin{table}[t]", r"\centering"]
    if caption:
        out.append(r"\caption{" + latex_escape(caption) + "}")
    if label:
        out.append(r"\label{" + label + "}")
    out.append(r"\begin{tabular}{" + align + "}")
    out.append(r"\toprule")
    out.append(" & ".join(latex_escape(h) for h in headers) + r" \\")
    out.append(r"\midrule")
    for row in rows:
        out.append(" & ".join(latex_escape(c) for c in row) + r" \\")
    out.append(r"\bottomrule")
    out.append(r"\end{tabular}")
    if notes:
        out.append(
            r"\par\smallskip{\footnotesize " + r" \\ ".join(latex_escape(n) for n in notes) + "}"
        )
    out.append(r"\end{table}")
    return "\n".join(out) + "\n"
