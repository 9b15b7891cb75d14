"""GET /ralu/plan_preview (plan_preview.py), the numbers the Stage Planner's chart draws: equal to
ralu's own functions for every preset and for custom plans, and equal to what the Planner node itself
reports when it runs; bad values get a 400 with a readable message."""

from __future__ import annotations

import json
from urllib.parse import urlencode

import pytest
import torch

from ralu.cost import COST_MODELS, estimate_speedup
from ralu.plan import PRESET_MODEL, PRESETS, make_plan, plan_sigmas
from ralu.summary import describe_plan

from .test_planner_and_edge_mask import planner, planner_prompt

ROUTE = "/ralu/plan_preview"
CUSTOM_PLANS = [
    dict(n1=4, n2=4, n3=6, e1=0.25, e2=0.5, up_ratio=0.25),
    dict(n1=3, n2=3, n3=6, e1=0.25, e2=0.3, up_ratio=0.2, estimate_for="sd3", width=768, height=1344),
    dict(n1=2, n2=5, n3=9, e1=0.1, e2=0.8, up_ratio=0.0, shifts="manual", h1=6.0, h2=2.5, h3=2.0, z=4.5),
    dict(n1=1, n2=1, n3=2, e1=0.2, e2=0.4, up_ratio=1.0, estimate_for="sd3.5_large_turbo", width=512),
]


def preview(comfy_host, inputs: dict) -> tuple[int, dict]:
    status, raw = comfy_host.request("GET", f"{ROUTE}?{urlencode(inputs)}")
    return status, json.loads(raw)


def expected(inputs: dict) -> dict:
    """What ralu's functions give for the Planner's inputs, called directly."""
    if inputs["preset"] == "custom":
        manual = inputs["shifts"] == "manual"
        model = inputs["estimate_for"]
        plan = make_plan(
            (inputs["n1"], inputs["n2"], inputs["n3"]),
            (inputs["e1"], inputs["e2"], 1.0),
            inputs["up_ratio"],
            shifts=(inputs["h1"], inputs["h2"], inputs["h3"]) if manual else None,
            z=inputs["z"] if manual else None,
            family=COST_MODELS[model].family,
        )
    else:
        plan, model = PRESETS[inputs["preset"]], PRESET_MODEL[inputs["preset"]]
    estimate = estimate_speedup(plan, model, inputs["height"], inputs["width"])
    return {
        "plan": plan,
        "estimate": estimate,
        "summary": describe_plan(plan, estimate, inputs["width"], inputs["height"], COST_MODELS[model].label),
        "model": COST_MODELS[model].label,
    }


def check_equal(got: dict, want: dict) -> None:
    plan, estimate = want["plan"], want["estimate"]
    assert got["plan"]["name"] == plan.name and got["plan"]["family"] == plan.family
    assert got["plan"]["steps"] == list(plan.steps)
    for key in ("ends", "starts", "shifts"):
        assert got["plan"][key] == pytest.approx(list(getattr(plan, key)), rel=1e-12, abs=1e-12), key
    assert got["plan"]["up_ratio"] == plan.up_ratio
    # The solver's result is the same computation in another process: equal to its last digits.
    assert got["plan"]["z"] == pytest.approx(plan.z, rel=1e-9)
    for k, sigmas in enumerate(plan_sigmas(plan)):
        assert len(got["sigmas"][k]) == plan.steps[k] + 1
        assert torch.allclose(
            torch.tensor(got["sigmas"][k], dtype=torch.float64), sigmas, rtol=1e-9, atol=1e-12
        )
    assert got["tokens"] == list(estimate.tokens)
    assert got["speedup"] == pytest.approx(estimate.speedup, rel=1e-12)
    assert got["baseline_steps"] == estimate.baseline_steps
    assert got["model"] == want["model"]


@pytest.mark.parametrize("preset", list(PRESETS))
def test_every_preset_equals_ralus_numbers(comfy_host, preset):
    inputs = planner(preset)["inputs"]
    status, got = preview(comfy_host, inputs)
    assert status == 200, got
    want = expected(inputs)
    check_equal(got, want)
    assert got["summary"] == want["summary"]


@pytest.mark.parametrize("custom", CUSTOM_PLANS, ids=[f"custom{k}" for k in range(len(CUSTOM_PLANS))])
def test_custom_plans_equal_ralus_numbers(comfy_host, custom):
    inputs = planner("custom", **custom)["inputs"]
    status, got = preview(comfy_host, inputs)
    assert status == 200, got
    check_equal(got, expected(inputs))


@pytest.mark.parametrize("custom", [{"preset": "sd35_turbo"}, {"preset": "custom", **CUSTOM_PLANS[1]}])
def test_the_summary_is_the_one_the_planner_node_reports(comfy_host, custom):
    inputs = planner(**custom)["inputs"]
    _, got = preview(comfy_host, inputs)
    entry = comfy_host.run(planner_prompt(**custom))
    assert entry["outputs"]["1"]["text"] == [got["summary"]]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"preset": "flux_9x"}, "preset ('flux_9x') must be one of: flux_4x, flux_5x, flux_7x,"),
        ({"n1": "0"}, "n1 (0) must be between 1 and 200"),
        ({"n2": "2.5"}, "n2 ('2.5') must be a whole number"),
        ({"z": "abc"}, "z ('abc') must be a number"),
        ({"width": "100000"}, "width (100000) must be between 256 and 8192"),
        ({"e1": "0.5", "e2": "0.4"}, "e2 (0.4) must be greater than e1 (0.5)"),
        ({"path": "/etc/passwd"}, "unknown query parameters: path"),
        ({"height": None}, "missing query parameters: height"),
    ],
)
def test_bad_values_get_a_400_with_a_readable_message(comfy_host, change, message):
    inputs = planner("custom")["inputs"]
    for name, value in change.items():
        if value is None:
            del inputs[name]
        else:
            inputs[name] = value
    status, body = preview(comfy_host, inputs)
    assert status == 400
    assert message in body["error"]
    assert "Traceback" not in body["error"]
