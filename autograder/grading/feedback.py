"""The feedback a student gets: one page per notebook, and an index of every item.

Made by the grader from trusted parts only: the release's own text, the
student's code and saved outputs as escaped text, and the judge's verdicts.
No student-written HTML, script or style reaches a page, and each page
forbids scripts outright (a Content-Security-Policy that allows none), so a
page stays inert in whatever browser opens it: the student's, the
instructor's, formgrader's. Pages need no network: styles are inline.

A passed or failed mark is text with an inline SVG beside it, readable
without an emoji font.
"""

from __future__ import annotations

import functools
import html
from collections.abc import Mapping

import nbformat

from ..exercises import ITEMS, NOTEBOOKS, items_of, max_score
from .sanitize import OWN_CELL

CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
STYLE = """body{font-family:sans-serif;max-width:70em;margin:2em auto;padding:0 1em;line-height:1.4}
td{vertical-align:top;padding:.2em .6em}tr:nth-child(even){background:#f4f4f4}
pre{margin:0;white-space:pre-wrap;word-break:break-word}pre.code{background:#f7f7f7;padding:.5em;border-left:3px solid #ccc}
.cell{margin:1em 0}.verdict{padding:.5em;margin:.3em 0;border:1px solid #ccc}.passed{border-color:#2e7d32}
.failed{border-color:#c62828}.saved{color:#555}.mark{font-weight:bold}.mark svg{vertical-align:middle}
.student-text{background:#fffbe6;padding:.5em}"""
_PASS_SVG = ('<svg width="14" height="14" viewBox="0 0 14 14" aria-hidden="true"><path d="M2 7l3 3 7-7" '
             'stroke="#2e7d32" stroke-width="2.5" fill="none"/></svg>')
_FAIL_SVG = ('<svg width="14" height="14" viewBox="0 0 14 14" aria-hidden="true"><path d="M3 3l8 8M11 3l-8 8" '
             'stroke="#c62828" stroke-width="2.5" fill="none"/></svg>')


def mark(passed: bool) -> str:
    """The passed/failed mark as HTML: an inline SVG and the word."""
    return (f'<span class="mark">{_PASS_SVG} passed</span>' if passed
            else f'<span class="mark">{_FAIL_SVG} failed</span>')


def page(title: str, body: str) -> str:
    """A self-contained HTML page that runs no script and loads nothing."""
    esc = html.escape
    return (f'<!DOCTYPE html><html><head><meta charset="utf-8">'
            f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
            f"<title>{esc(title)}</title><style>{STYLE}</style></head><body>\n{body}\n</body></html>\n")


@functools.lru_cache(maxsize=4096)
def _release_markdown(source: str) -> str:
    """A markdown cell of the release (trusted text, hints included) as HTML; the same for every student."""
    import mistune

    return mistune.html(source)


def notebook_page(student: str, notebook_id: str, notebook: nbformat.NotebookNode, saved_outputs: Mapping[str, str],
                  verdicts: Mapping[str, Mapping], scores: Mapping[str, float], notes: list[str]) -> str:
    """The feedback page of one notebook: every cell, and under each test cell how the item went."""
    esc = html.escape
    items = {item.grade_id: item for item in items_of(notebook_id)}
    got = sum(scores.get(gid, 0.0) for gid in items)
    parts = [f"<h1>{esc(notebook_id)}: feedback for {esc(student)}</h1>",
             f"<p><b>This notebook: {got:g} / {sum(i.points for i in items.values())}</b>; "
             f"the whole workbook: {total(scores):g} / {max_score()}.</p>"]
    if notes:
        parts.append("<h2>Notes on this notebook</h2><ul>" + "".join(f"<li>{esc(n)}</li>" for n in notes) + "</ul>")
    for cell in notebook.cells:
        meta = cell.get("metadata", {}).get("nbgrader", {})
        grade_id = meta.get("grade_id")
        if cell.cell_type == "markdown":
            own = bool(cell.get("metadata", {}).get(OWN_CELL))  # a student's own cell: text, never markup
            body = f'<pre class="student-text">{esc(cell.source)}</pre>' if own else _release_markdown(cell.source)
            parts.append(f'<div class="cell">{body}</div>')
        elif cell.cell_type == "code":
            parts.append(f'<div class="cell"><pre class="code">{esc(cell.source)}</pre></div>')
            if grade_id in items:
                parts.append(_item_box(items[grade_id], saved_outputs.get(grade_id, ""), verdicts.get(grade_id, {}),
                                       scores.get(grade_id, 0.0)))
    return page(f"{notebook_id}: feedback for {student}", "\n".join(parts))


def _item_box(item, saved: str, verdict: Mapping, score: float) -> str:
    esc = html.escape
    passed = bool(verdict.get("passed"))
    code = verdict.get("diagnosis", "")
    lines = [f'<div class="verdict {"passed" if passed else "failed"}">',
             f"<p>{mark(passed)} <code>{esc(item.grade_id)}</code>: {score:g} / {item.points} "
             f"on inputs you had not seen" + (f" (diagnosis <code>{esc(code)}</code>)" if code else "") + "</p>",
             f"<pre>{esc(str(verdict.get('message', '')))}</pre>"]
    if saved:
        lines.append('<p class="saved">In your notebook as you saved it (not run again by the grader, '
                     f'shown for your information):</p><pre class="saved">{esc(saved)}</pre>')
    lines.append("</div>")
    return "\n".join(lines)


def total(scores: Mapping[str, float]) -> float:
    return sum(scores.get(item.grade_id, 0.0) for item in ITEMS)


def index_page(student: str, scores: Mapping[str, float], verdicts: Mapping[str, Mapping], notes: list[str],
               pages: Mapping[str, str]) -> str:
    """Every graded item, its points and the reason; links to the notebooks' pages.

    ``pages``: notebook id -> the relative link of its page, or the reason it has none.
    """
    esc = html.escape
    rows = []
    for notebook in NOTEBOOKS:
        for item in items_of(notebook):
            verdict = verdicts.get(item.grade_id, {})
            got = scores.get(item.grade_id, 0.0)
            code = verdict.get("diagnosis", "")
            rows.append(f"<tr><td>{mark(got >= item.points)}</td><td><code>{esc(item.grade_id)}</code></td>"
                        f"<td>{got:g}/{item.points}</td><td><pre>{esc(str(verdict.get('message', '')))}</pre></td>"
                        f"<td>{f'<code>{esc(code)}</code>' if code else ''}</td></tr>")
    note_html = "".join(f"<li>{esc(n)}</li>" for n in notes) or "<li>none</li>"
    links = "".join(f'<li><a href="{esc(link)}">{esc(nb)}</a></li>' if link.endswith(".html")
                    else f"<li>{esc(nb)}: no page, {esc(link)}</li>" for nb, link in pages.items())
    body = (f"<h1>Backprop Ninja: feedback for {esc(student)}</h1>"
            f"<p><b>Total: {total(scores):g} / {max_score()}</b>. Each item was checked by running your answer "
            "cells again on inputs you had not seen (other seeds and sizes) and comparing with PyTorch's autograd.</p>"
            f"<h2>Notes on the submission</h2><ul>{note_html}</ul>"
            "<h2>Items</h2><table><tr><th></th><th>item</th><th>points</th><th>why</th><th>diagnosis</th></tr>"
            f"{''.join(rows)}</table><h2>Your notebooks, as graded</h2><ul>{links}</ul>")
    return page(f"Feedback: {student}", body)
