"""The JSON body a webhook receives (`PAYLOAD_SCHEMA`, documented in docs/notifications.md), and
the title and text apprise sends to every other service."""

from __future__ import annotations

from typing import Any

from cloudorch.runs.record import RunRecord

SCHEMA_ID = "cloudorch.notification/v1"

PAYLOAD_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "cloudorch notification",
    "type": "object",
    "required": [
        "schema", "delivery_id", "event", "occurred_at", "plan", "stage", "run_id", "command", "actor",
        "summary", "result", "exit_code", "counts", "failed", "versions", "detail",
    ],
    "additionalProperties": False,
    "properties": {
        "schema": {"const": SCHEMA_ID},
        "delivery_id": {"type": "string", "description": "Unique per event and target; the same on redelivery."},
        "event": {"type": "string", "description": "One of the events in the table above."},
        "occurred_at": {"type": "string", "format": "date-time"},
        "plan": {"type": "string", "description": "The plan's name (or file stem)."},
        "plan_file": {"type": "string"},
        "stage": {"type": ["string", "null"]},
        "run_id": {"type": "string", "description": "`cloudorch runs show RUN_ID` shows the run."},
        "command": {"type": "string"},
        "actor": {"type": "string"},
        "host": {"type": "string"},
        "summary": {"type": "string", "description": "One line for humans."},
        "result": {"enum": ["succeeded", "failed", "declined", "blocked", "interrupted"]},
        "exit_code": {"type": "integer"},
        "counts": {"type": "object", "additionalProperties": {"type": "integer"}},
        "failed": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["address", "error"],
                "additionalProperties": False,
                "properties": {"address": {"type": "string"}, "error": {"type": "string"}},
            },
        },
        "versions": {
            "type": "object",
            "required": ["cloudorch"],
            "properties": {
                "cloudorch": {"type": "string"},
                "release": {"type": ["string", "null"]},
                "previous": {"type": ["string", "null"]},
            },
        },
        "detail": {"type": "object", "description": "What the event is about (drift, policies, gates)."},
    },
}


def build(event: str, run: RunRecord, delivery_id: str, summary: str, detail: dict[str, Any]) -> dict[str, Any]:
    return {
        "schema": SCHEMA_ID,
        "delivery_id": delivery_id,
        "event": event,
        "occurred_at": run.ended or run.started,
        "plan": run.plan,
        "plan_file": run.plan_file,
        "stage": run.stage,
        "run_id": run.id,
        "command": run.command,
        "actor": run.actor,
        "host": run.host,
        "summary": summary,
        "result": run.result,
        "exit_code": run.exit_code,
        "counts": dict(run.counts),
        "failed": [{"address": f.address, "error": f.error} for f in run.failed],
        "versions": {
            "cloudorch": run.cloudorch_version,
            "release": run.version,
            "previous": detail.get("previous"),
        },
        "detail": detail,
    }


def text_of(payload: dict[str, Any]) -> tuple[str, str]:
    """(title, body) for apprise: the summary, the failed addresses, and where to look."""
    where = payload["plan"] + (f" ({payload['stage']})" if payload.get("stage") else "")
    title = f"cloudorch {payload['event']}: {where}"
    lines = [payload["summary"]]
    lines += [f"- {f['address']}: {f['error']}" for f in payload["failed"][:20]]
    if len(payload["failed"]) > 20:
        lines.append(f"- and {len(payload['failed']) - 20} more")
    lines.append(f"run {payload['run_id']} by {payload['actor']} (cloudorch runs show {payload['run_id']})")
    return title, "\n".join(lines)
