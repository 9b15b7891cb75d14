"""GET /ralu/plan_preview: what the Stage Planner would compute for its widget values, for the chart the
frontend draws on the node (web/ralu_planner.js) as the widgets change, before anything runs.

The query parameters are the Planner's inputs by name, all of them. Each is checked against the
Planner's own schema (its ranges and options, as ComfyUI checks a queued prompt) and its
validate_inputs, then `run_planner` computes exactly what the node's execute does. The route only
computes: it takes no paths, reads and writes no files. A bad value gets a 400 with a readable message.
"""

from __future__ import annotations

import asyncio
import sys

from aiohttp import web

from .nodes.planner import RALUStagePlanner, run_planner
from .ralu.plan import PlanError, plan_sigmas

ROUTE = "/ralu/plan_preview"


class BadQuery(ValueError):
    pass


def _parse(spec, text: str):
    """One query value as the Planner input `spec` takes it, checked as ComfyUI checks a prompt."""
    name = spec.id
    if hasattr(spec, "options"):
        if text not in spec.options:
            raise BadQuery(f"{name} ({text!r}) must be one of: {', '.join(spec.options)}")
        return text
    number = int if spec.get_io_type() == "INT" else float
    try:
        value = number(text)
    except ValueError:
        kind = "a whole number" if number is int else "a number"
        raise BadQuery(f"{name} ({text!r}) must be {kind}") from None
    if not spec.min <= value <= spec.max:
        raise BadQuery(f"{name} ({value}) must be between {spec.min} and {spec.max}")
    return value


def planner_values(query) -> dict:
    """The Planner's inputs from a query mapping, every one required and checked; BadQuery if not."""
    specs = RALUStagePlanner.GET_SCHEMA().inputs
    missing = [spec.id for spec in specs if spec.id not in query]
    if missing:
        raise BadQuery(f"missing query parameters: {', '.join(missing)}")
    unknown = sorted(set(query) - {spec.id for spec in specs})
    if unknown:
        raise BadQuery(f"unknown query parameters: {', '.join(unknown)}")
    values = {spec.id: _parse(spec, query[spec.id]) for spec in specs}
    problem = RALUStagePlanner.validate_inputs(e1=values["e1"], e2=values["e2"])
    if problem is not True:
        raise BadQuery(problem)
    return values


def plan_preview(values: dict) -> dict:
    """The chart's data: the plan, each stage's sigmas and tokens, the estimate and the summary text."""
    result = run_planner(**values)
    plan, estimate = result.plan, result.estimate
    return {
        "plan": {
            "name": plan.name,
            "family": plan.family,
            "steps": list(plan.steps),
            "ends": list(plan.ends),
            "starts": list(plan.starts),
            "up_ratio": plan.up_ratio,
            "shifts": list(plan.shifts),
            "z": plan.z,
        },
        "sigmas": [sigmas.tolist() for sigmas in plan_sigmas(plan)],
        "tokens": list(estimate.tokens),
        "model": result.model.label,
        "baseline_steps": estimate.baseline_steps,
        "speedup": estimate.speedup,
        "width": values["width"],
        "height": values["height"],
        "summary": result.summary,
    }


async def handle_plan_preview(request: web.Request) -> web.Response:
    try:
        values = planner_values(request.query)
        # NT-DM takes up to about a second for a custom plan: off the server's event loop.
        return web.json_response(await asyncio.to_thread(plan_preview, values))
    except (BadQuery, PlanError) as error:
        return web.json_response({"error": str(error)}, status=400)


def register_routes() -> None:
    """Adds the route to ComfyUI's running server. Without one (ComfyUI used as a library, as `make
    bench` does) there is nothing to add it to, and importing server.py there would fail."""
    server = sys.modules.get("server")  # main.py imports it before it loads any custom node
    instance = getattr(getattr(server, "PromptServer", None), "instance", None)
    if instance is not None:
        instance.routes.get(ROUTE)(handle_plan_preview)
