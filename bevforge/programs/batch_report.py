"""The printable batch report: one self-contained HTML page (no script, no external asset) with print CSS.

Built from the batch's view (`BatchRecorder.get`), so the report says exactly what the API and the screen
say. Every value is HTML-escaped: a step title, a user name or an alarm message is text, never markup.
"""

from __future__ import annotations

from html import escape
from typing import Any

STYLE = """
body { font-family: system-ui, sans-serif; color: #111; margin: 1.5cm; font-size: 11pt; }
h1 { font-size: 16pt; margin: 0 0 0.3em; }
h2 { font-size: 12pt; margin: 1.2em 0 0.4em; border-bottom: 1px solid #444; }
dl.head { display: grid; grid-template-columns: max-content 1fr; gap: 0.15em 1em; margin: 0; }
dl.head dt { font-weight: 600; }
dl.head dd { margin: 0; }
table { border-collapse: collapse; width: 100%; font-size: 9.5pt; }
th, td { border: 1px solid #888; padding: 0.2em 0.4em; text-align: left; vertical-align: top; }
th { background: #e8e8e8; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.skipped td, tr.aborted td, tr.restarted td { color: #555; font-style: italic; }
p.none { color: #555; font-style: italic; }
@page { size: A4 landscape; margin: 1.2cm; }
@media print {
  body { margin: 0; }
  h2 { break-after: avoid; }
  tr { break-inside: avoid; }
  thead { display: table-header-group; }
}
"""


def _text(value: Any) -> str:
    return "—" if value is None or value == "" else escape(str(value))


def _minutes(seconds: Any) -> str:
    return "—" if not isinstance(seconds, int | float) else f"{seconds / 60:.1f}"


def _number(value: Any, digits: int = 1) -> str:
    return "—" if not isinstance(value, int | float) or isinstance(value, bool) else f"{value:.{digits}f}"


def _time(iso: Any) -> str:
    return "—" if not isinstance(iso, str) else escape(iso.replace("T", " ").removesuffix("Z") + " UTC")


def _table(headers: list[str], rows: list[tuple[str, list[tuple[str, bool]]]], empty: str) -> str:
    if not rows:
        return f'<p class="none">{escape(empty)}</p>'
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join(f'<tr class="{escape(css)}">' + "".join(
        f'<td class="num">{cell}</td>' if numeric else f"<td>{cell}</td>" for cell, numeric in cells) + "</tr>"
        for css, cells in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def render(batch: dict[str, Any]) -> str:
    """The batch as a printable HTML page: the header, the steps planned against actual, actions, alarms."""
    title = f"Batch {batch['id']} — {batch.get('recipe') or batch['templateName']}"
    head = [("Recipe", batch.get("recipe")), ("Program", batch["templateName"]), ("Unit", batch["unitName"]),
            ("Operator", batch.get("startedBy")), ("Started", None), ("Ended", None),
            ("Duration (min)", None), ("Outcome", batch["outcome"])]
    items = []
    for label, value in head:
        shown = {"Started": _time(batch["startedAt"]), "Ended": _time(batch["endedAt"]),
                 "Duration (min)": _minutes(batch.get("durationS"))}.get(label, _text(value))
        items.append(f"<dt>{escape(label)}</dt><dd>{shown}</dd>")
    steps = [(s["outcome"], [
        (str(s["index"] + 1), True), (_text(s["title"]), False), (_text(s["type"]), False),
        (_number(s["plannedTarget"]), True), (_minutes(s["plannedDurationS"]), True),
        (_minutes(s["actualDurationS"]), True), (_number(s["actualMean"]), True), (_number(s["actualMin"]), True),
        (_number(s["actualMax"]), True), (_minutes(s["inBandS"]), True), (_time(s["startedAt"]), False),
        (_time(s["endedAt"]), False), (_text(s["outcome"]), False)]) for s in batch["steps"]]
    actions = [("", [(_time(a["time"]), False), (_text(a["user"]), False), (_text(a["action"]), False),
                     (_text(a["target"]), False), (_text(a["old"]), False), (_text(a["new"]), False),
                     (_text(a["result"]), False), (_text(a["detail"]), False)]) for a in batch["actions"]]
    alarms = [("", [(_time(a["raisedAt"]), False), (_text(a["priority"]), False), (_text(a["message"]), False),
                    (_time(a["clearedAt"]), False), (_text(a["ackedBy"]), False)]) for a in batch["alarms"]]
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>{escape(title)}</title><style>{STYLE}</style></head><body>"
        f"<h1>{escape(title)}</h1><dl class=\"head\">{''.join(items)}</dl>"
        "<h2>Steps: planned and actual</h2>"
        + _table(["#", "Step", "Type", "Target", "Planned (min)", "Actual (min)", "Mean", "Min", "Max",
                  "In band (min)", "Started", "Ended", "Outcome"], steps, "No steps recorded.")
        + "<h2>Operator actions</h2>"
        + _table(["Time", "User", "Action", "Target", "Old", "New", "Result", "Detail"], actions,
                 "No operator actions during the batch.")
        + "<h2>Alarms</h2>"
        + _table(["Raised", "Priority", "Message", "Cleared", "Acknowledged by"], alarms,
                 "No alarms during the batch.")
        + "</body></html>\n")
