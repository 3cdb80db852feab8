"""How each operator command prints its result: a rich table for a person, JSON with ``--json``.

Presentation only: the data comes from the ops modules as plain rows, and JSON prints the same
rows in full.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table

from orchestrator.ops.dlq import RedriveOutcome
from orchestrator.ops.rebuild import RebuildResult
from orchestrator.ops.render import console, print_json, print_table
from orchestrator.ops.replay import ReplayReport
from orchestrator.ops.rewind import RewindPlan

__all__ = [
    "show_dead_letter",
    "show_dead_letters",
    "show_history",
    "show_rebuild",
    "show_redrive",
    "show_replay",
    "show_rewind_plan",
    "show_saga",
    "show_sagas",
]


def _cut(text: Any, width: int = 60) -> Any:
    if isinstance(text, str) and len(text) > width:
        return text[: width - 1] + "…"
    return text


def show_rebuild(result: RebuildResult, as_json: bool) -> None:
    if as_json:
        print_json(
            {
                "state_dir": result.state_dir,
                "partitions": list(result.partitions),
                "sagas": result.sagas,
                "records": result.records,
                "seconds": round(result.seconds, 3),
                "records_per_second": round(result.records_per_second, 1),
            }
        )
    else:
        console().print(result.summary(), highlight=False, markup=False)


def show_dead_letters(rows: Sequence[Mapping[str, Any]], as_json: bool, total: int) -> None:
    if as_json:
        print_json(list(rows))
        return
    shown = [{**r, "error": _cut(r["error"]), "timestamp": r["timestamp"]} for r in rows]
    caption = f"{len(rows)} of {total} dead letter(s)"
    print_table(
        "ksaga.dlq",
        shown,
        ["position", "timestamp", "reason", "error", "source", "redriven"],
        caption=caption,
    )


def _kv_table(title: str, pairs: Mapping[str, Any]) -> Table:
    table = Table(title=escape(title), show_header=False, title_justify="left")
    table.add_column("field", style="bold")
    table.add_column("value", overflow="fold")
    for key, value in pairs.items():
        if value is None or value == []:
            continue
        text = json.dumps(value, indent=2) if isinstance(value, dict | list) else str(value)
        table.add_row(key, escape(text))
    return table


def show_dead_letter(detail: Mapping[str, Any], as_json: bool) -> None:
    if as_json:
        print_json(dict(detail))
        return
    out = console()
    skip = {"headers", "payload", "partition", "offset", "source_topic", "source_partition",
            "source_offset"}  # fmt: skip
    out.print(_kv_table(f"dead letter {detail['position']}", {
        k: v for k, v in detail.items() if k not in skip
    }))  # fmt: skip
    headers = Table(title="headers", title_justify="left")
    headers.add_column("name")
    headers.add_column("value", overflow="fold")
    for name, value in detail["headers"]:
        headers.add_row(name, "" if value is None else escape(value))
    out.print(headers)
    payload = detail["payload"]
    body = payload.get("value", payload.get("hex"))
    text = json.dumps(body, indent=2) if not isinstance(body, str) else body
    out.print(Panel(escape(text), title=f"payload ({payload['format']})", title_align="left"))


def show_redrive(outcome: RedriveOutcome, as_json: bool) -> None:
    if as_json:
        print_json({"redriven": outcome.redriven, "skipped": outcome.skipped})
        return
    print_table(
        "redrive",
        outcome.rows(),
        ["position", "reason", "source", "outcome"],
        caption=f"{len(outcome.redriven)} redriven, {len(outcome.skipped)} skipped",
    )


def show_sagas(rows: Sequence[Mapping[str, Any]], as_json: bool) -> None:
    if as_json:
        print_json(list(rows))
        return
    print_table(
        "sagas",
        rows,
        ["saga_id", "type", "status", "step", "action", "attempt", "version", "updated", "idle",
         "due_in"],
        caption=f"{len(rows)} saga(s), most recently updated first",
    )  # fmt: skip


def show_saga(detail: Mapping[str, Any], as_json: bool) -> None:
    if as_json:
        print_json(dict(detail))
        return
    console().print(_kv_table(f"saga {detail['saga_id']}", detail))


def show_history(rows: Sequence[Mapping[str, Any]], as_json: bool, saga_id: str) -> None:
    if as_json:
        print_json(list(rows))
        return
    shown = [
        {
            **r,
            "reply": f"{r['step']}/{r['action']}#{r['attempt']}" if r["step"] else "",
            "effects": "\n".join(r["effects"]),
        }
        for r in rows
    ]
    print_table(
        f"history of {saga_id}",
        shown,
        ["version", "at", "input", "reply", "transition", "effects", "source"],
    )


def show_replay(report: ReplayReport, as_json: bool) -> None:
    if as_json:
        print_json(report.to_json())
        return
    out: Console = console()
    if report.divergences:
        print_table(
            "divergences (first per saga)",
            [d.row() for d in report.divergences],
            ["saga_id", "at", "input", "recorded", "replayed", "detail"],
            out=out,
        )
    if report.skipped:
        print_table(
            "not replayed",
            [{"saga_id": k, "why": v} for k, v in sorted(report.skipped.items())],
            ["saga_id", "why"],
            out=out,
        )
    out.print(report.summary(), highlight=False, markup=False)


def show_rewind_plan(
    plan: RewindPlan, as_json: bool, done: Mapping[int, tuple[int, int]] | None = None
) -> None:
    """The preview of a rewind; with ``done``, the offsets it has set."""
    if as_json:
        print_json(
            {
                "moves": {str(p): list(m) for p, m in plan.moves().items()},
                "reset": done is not None,
                "act": plan.act,
                "dead_again": plan.dead_again,
                "unsafe": plan.unsafe,
                "records": plan.records,
                "summary": plan.summary(),
            }
        )
        return
    out = console()
    columns = ["at", "saga_id", "recorded", "will"]
    for title, rows in (
        ("UNSAFE: already had an outcome, would act again", plan.unsafe),
        ("dead letters that will act", plan.act),
        ("will be dead-lettered again", plan.dead_again),
    ):
        if rows:
            print_table(title, rows, columns, out=out)
    moves = [
        {"partition": p, "committed": old, "rewind to": new, "offsets": old - new}
        for p, (old, new) in plan.moves().items()
    ]
    title = "offsets reset" if done is not None else "offsets to reset (dry run)"
    print_table(title, moves, ["partition", "committed", "rewind to", "offsets"], out=out)
    out.print(plan.summary(), highlight=False, markup=False)
    if done is not None:
        out.print("offsets reset; start the replicas to reprocess", highlight=False, markup=False)
