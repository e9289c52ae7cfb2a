"""The readable table of ``omnichannel lag``, drawn from the JSON form of a report.

Drawing from the wire format (:func:`omnichannel.lag.model.report_to_json`) lets one renderer serve both a
reading taken by the command itself and one fetched from a running ``lag serve`` (``--server``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from omnichannel import exit_codes

__all__ = ["exit_code", "render_report"]

_COLOURS = {
    "OK": "green",
    "WARN": "yellow",
    "ERR": "bold red",
    "STALL": "bold red",
    "STOP": "bold red",
    "REWIND": "bold red",
    "NOTFOUND": "bold magenta",
}


def _count(value: Any) -> str:
    return "-" if value is None else f"{value:,}"


def _seconds(value: Any) -> str:
    if value is None:
        return "-"
    seconds = float(value)
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, rest = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{rest:02d}s"
    return f"{minutes // 60}h{minutes % 60:02d}m"


def _status(value: str) -> Text:
    return Text(value, style=_COLOURS.get(value, ""))


def render_report(report: Mapping[str, Any], *, watching: bool = False) -> RenderableType:
    """A header line, a broker banner when Kafka does not answer, then one table per group.

    ``watching`` (``--watch``) changes only the closing hint about windows that are not yet complete.
    """
    parts: list[RenderableType] = []
    broker = report.get("broker") or {}
    header = Text.assemble(
        ("Consumer lag", "bold"),
        f" · {broker.get('bootstrap', '?')} · {report.get('taken_at_iso') or '-'}",
        f" · window {report.get('window_seconds', 0):g}s",
        style="",
    )
    parts.append(header)
    if broker and not broker.get("ok", True):
        since = broker.get("last_success_at_iso")
        tail = f" Figures below are from {since}." if since else " No figures were read yet."
        parts.append(Text(f"Kafka does not answer: {broker.get('error')}.{tail}", style="bold red"))
    groups = report.get("groups") or []
    if not groups and broker.get("ok", True):
        parts.append(Text("No consumer groups found.", style="dim"))
    incomplete = False
    for group in groups:
        title = Text.assemble(
            (group["group"], "bold"),
            " ",
            _status(group["status"]),
            f"  {group['state']}, {group['members']} member(s)",
            f"  lag {_count(group['lag'])}",
            f"  time lag {_seconds(group['time_lag_seconds'])}",
        )
        if group.get("max_lag"):
            biggest = group["max_lag"]
            title.append(f"  largest {biggest['topic']}[{biggest['partition']}]")
        parts.append(Text())
        parts.append(title)
        for problem in group.get("problems", []):
            parts.append(Text(f"  ! {problem}", style="red"))
        if not group.get("topics"):
            continue
        table = Table(box=None, pad_edge=False, padding=(0, 1), header_style="dim")
        for name, justify in (
            ("TOPIC", "left"),
            ("PART", "right"),
            ("COMMITTED", "right"),
            ("END", "right"),
            ("LAG", "right"),
            ("TIME LAG", "right"),
            ("STATUS", "left"),
            ("OWNER / WHY", "left"),
        ):
            table.add_column(name, justify=justify)  # type: ignore[arg-type]
        for topic in group["topics"]:
            for p in topic["partitions"]:
                incomplete = incomplete or not p["window_complete"]
                why = " · ".join(x for x in (p.get("owner"), p.get("reason")) if x)
                table.add_row(
                    topic["topic"],
                    str(p["partition"]),
                    _count(p["committed"]),
                    _count(p["end"]),
                    _count(p["lag"]),
                    _seconds(p["time_lag_seconds"]),
                    _status(p["status"]),
                    Text(why, style="dim"),
                )
        parts.append(table)
    if incomplete:
        window = f"{report.get('window_seconds', 0):g}s"
        hint = (
            f"STOP, STALL and WARN need {window} of readings: partitions watched for less say so."
            if watching
            else f"Statuses need {window} of readings to judge STOP, STALL and WARN: use --watch, or ask a "
            "running `omnichannel lag serve` with --server URL."
        )
        parts.append(Text())
        parts.append(Text(hint, style="dim"))
    return Group(*parts)


def exit_code(report: Mapping[str, Any]) -> int:
    """0 every group OK or WARN; 3 a group ERR; 4 a group NOTFOUND (wins over 3); 75 Kafka did not answer."""
    broker = report.get("broker") or {}
    if not broker.get("ok", False):
        return exit_codes.UNAVAILABLE
    statuses = {g["status"] for g in report.get("groups") or []}
    if "NOTFOUND" in statuses:
        return exit_codes.GROUP_NOTFOUND
    if "ERR" in statuses:
        return exit_codes.GROUP_ERR
    return exit_codes.OK
