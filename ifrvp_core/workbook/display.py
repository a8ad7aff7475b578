"""HTML for the notebooks and their reports: tables, the run's parameters, inlined animations.

The reports hide code, so what a notebook ran with and what it found are shown as HTML tables
(`show_settings`, `show_table`); `html_table` also builds the tables of `reports/index.html`.
"""
from __future__ import annotations

import base64
import html
import json
from pathlib import Path

import numpy as np
from IPython.display import HTML, display

from ifrvp_core.evaluate import is_running_step


def html_table(rows: list[dict], caption: str | None = None, digits: int = 3) -> str:
    """A list of dicts as an HTML table (numbers rounded), for `IPython.display.HTML`."""
    if not rows:
        return "<p><em>(empty)</em></p>"
    headers = list(dict.fromkeys(key for row in rows for key in row))

    def cell(value):
        if isinstance(value, float):
            return "n/a" if not np.isfinite(value) else f"{value:.{digits}f}"
        if value is None:
            return "n/a"
        return html.escape(str(value))

    parts = [f"<p style='margin-bottom:2px'><b>{html.escape(caption)}</b></p>"] if caption else []
    parts.append("<table class='ifrvp'>")
    parts.append("<tr>" + "".join(f"<th>{html.escape(str(h))}</th>" for h in headers) + "</tr>")
    for row in rows:
        parts.append("<tr>" + "".join(f"<td>{cell(row.get(h, ''))}</td>" for h in headers) + "</tr>")
    parts.append("</table>")
    return "".join(parts)


def show_table(rows: list[dict], caption: str | None = None, digits: int = 3) -> None:
    display(HTML(html_table(rows, caption, digits)))


def show_settings(settings: dict) -> None:
    """The parameters a notebook ran with (the report hides code, so it shows them as a table)."""
    def text(value):
        if isinstance(value, (dict, list, tuple)):
            return json.dumps(value)
        return f"{value:g}" if isinstance(value, float) else value

    rows = [{"parameter": key, "value": text(value)} for key, value in settings.items()]
    show_table(rows, "parameters of this run")


def step_column(metric: str, step: str) -> str:
    """A table column for `metric` at `step`: "psnr frame t+3" (frame t+3 alone) or, for a
    running-mean step, "psnr mean t+1..t+3" (the mean over frames t+1..t+3)."""
    return f"{metric} {'mean' if is_running_step(step) else 'frame'} {step}"


def animation_html(path, width: int | None = None) -> str:
    """An <img> with the GIF inlined as base64: plays in JupyterLab and in the HTML report alike."""
    data = base64.b64encode(Path(path).read_bytes()).decode()
    size = f" width='{width}'" if width else ""
    return f"<img src='data:image/gif;base64,{data}'{size} alt='{html.escape(Path(path).name)}'/>"


__all__ = ["animation_html", "html_table", "show_settings", "show_table", "step_column"]
