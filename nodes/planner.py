from dataclasses import dataclass

from comfy_api.latest import io, ui

from ..ralu.cost import COST_MODELS, CostModel, SpeedupEstimate, estimate_speedup
from ..ralu.plan import PRESET_MODEL, PRESETS, Plan, PlanError, make_plan, validate_ends
from ..ralu.summary import describe_plan
from .plan_type import RaluPlan
from .shared_inputs import ListedCombo

CUSTOM = "custom"
STAGE_NAMES = ("low resolution", "edges at full resolution", "full resolution")
SOLVE = "solve (NT-DM)"
MANUAL = "manual"
# The widget range of the stage ends e1 and e2 (validate_inputs checks it: ComfyUI does not, see there).
END_MIN, END_MAX = 0.01, 0.99


def custom_plan_args(n1, n2, n3, e1, e2, up_ratio, shift_mode, h1, h2, h3, z) -> dict:
    manual = shift_mode == MANUAL
    return dict(
        steps=(n1, n2, n3),
        ends=(e1, e2, 1.0),
        up_ratio=up_ratio,
        shifts=(h1, h2, h3) if manual else None,
        z=z if manual else None,
    )


@dataclass(frozen=True)
class PlannerResult:
    plan: Plan
    model: CostModel  # the model the estimate is for
    estimate: SpeedupEstimate
    summary: str


def run_planner(
    preset, n1, n2, n3, e1, e2, up_ratio, shifts, h1, h2, h3, z, estimate_for, width, height
) -> PlannerResult:
    """What the Planner computes from its widget values: for its output and for the chart's route."""
    if preset == CUSTOM:
        model = estimate_for
        args = custom_plan_args(n1, n2, n3, e1, e2, up_ratio, shifts, h1, h2, h3, z)
        chosen = COST_MODELS[model]
        plan = make_plan(**args, base_shift=chosen.time_shift, family=chosen.family, model=model)
    else:
        plan, model = PRESETS[preset], PRESET_MODEL[preset]
    estimate = estimate_speedup(plan, model, height, width)
    summary = describe_plan(plan, estimate, width, height, COST_MODELS[model].label)
    return PlannerResult(plan, COST_MODELS[model], estimate, summary)


class RALUStagePlanner(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        custom_only = " Used when preset is 'custom'."
        return io.Schema(
            node_id="RALUStagePlanner",
            display_name="RALU Stage Planner",
            category="sampling/RALU",
            # Not an output node: ComfyUI runs every valid output node of a prompt and reports success,
            # so a Planner output would let a graph whose sampler branch fails validation (a missing
            # model file) "succeed" with no picture. The chart on the node (web/ralu_planner.js) needs no
            # run, so nothing is lost.
            description="Chooses how RALU splits sampling into a low-res, a mixed and a full-res stage, "
            "and estimates the speed-up.",
            inputs=[
                ListedCombo(
                    "preset",
                    options=[*PRESETS, CUSTOM],
                    default="flux_4x",
                    tooltip="flux_4x / flux_7x: the reference code's FLUX.1-dev plans; flux_5x: the "
                    "paper's; flux_schnell: FLUX.1-schnell in its own 4 steps, N = 1, 1, 2 as the paper ran "
                    "distilled models, with our stage ends 0.4, 0.55 (the best NT-DM fit with Z like the "
                    "published presets'), shifts 1.001, 1.025, 1.042 and Z 4.47 solved by NT-DM with "
                    "schnell's base shift 1; sd3_2x / sd3_3x: the paper's SD3 Medium plans; sd35_turbo: "
                    "SD3.5 Large Turbo in 4 steps, N = 1, 1, 2, stage ends 0.2, 0.4 chosen the same way, "
                    "shifts 5.060, 2.365, 2.861 and Z 5.436 solved with base shift 3; custom: your own "
                    "steps and stage ends below, solved with the base shift of the estimate_for model.",
                ),
                *(
                    io.Int.Input(
                        f"n{k}",
                        default=n,
                        min=1,
                        max=200,
                        tooltip=f"Euler steps of stage {k} ({what})." + custom_only,
                    )
                    for k, n, what in zip((1, 2, 3), PRESETS["flux_4x"].steps, STAGE_NAMES)
                ),
                io.Float.Input(
                    "e1",
                    default=0.3,
                    min=END_MIN,
                    max=END_MAX,
                    step=0.01,
                    tooltip="Progress (0 = noise, 1 = clean) at which stage 1 ends." + custom_only,
                ),
                io.Float.Input(
                    "e2",
                    default=0.45,
                    min=END_MIN,
                    max=END_MAX,
                    step=0.01,
                    tooltip="Progress at which stage 2 ends; must be greater than e1." + custom_only,
                ),
                io.Float.Input(
                    "up_ratio",
                    default=0.3,
                    min=0.0,
                    max=1.0,
                    step=0.01,
                    tooltip="Fraction of low-res tokens (those with the most edges) upsampled early, "
                    "at the end of stage 1." + custom_only,
                ),
                ListedCombo(
                    "shifts",
                    options=[SOLVE, MANUAL],
                    default=SOLVE,
                    tooltip="solve: per-stage time shifts and Z by noise-timestep distribution matching "
                    "(NT-DM, as the paper); manual: the values below." + custom_only,
                ),
                *(
                    io.Float.Input(
                        f"h{k}",
                        default=3.0,
                        min=0.5,
                        max=10.0,
                        step=0.001,
                        tooltip=f"Time shift of stage {k}, with shifts 'manual'.",
                    )
                    for k in (1, 2, 3)
                ),
                io.Float.Input(
                    "z",
                    default=6.0,
                    min=2.0,  # below 2 the re-noise covariance I - 11^T / z^2 is not one
                    max=100.0,
                    step=0.001,
                    tooltip="Z (1/sqrt(c) in the paper): how much noise each stage change adds back, "
                    "with shifts 'manual'.",
                ),
                ListedCombo(
                    "estimate_for",
                    options=list(COST_MODELS),
                    default="flux",
                    tooltip="The model a custom plan is for (presets carry their own). Its family (flux, "
                    "or sd3 for every SD3 and SD3.5) goes with the plan: RALU KSampler refuses a plan made "
                    "for another family than the connected model's. The speed-up is estimated on its "
                    "dimensions against its own steps: "
                    + "; ".join(
                        f"{key}: {m.label}, {m.baseline_steps} steps" for key, m in COST_MODELS.items()
                    )
                    + ".",
                ),
                io.Int.Input(
                    "width", default=1024, min=256, max=8192, step=32, tooltip="Image width for the estimate."
                ),
                io.Int.Input(
                    "height",
                    default=1024,
                    min=256,
                    max=8192,
                    step=32,
                    tooltip="Image height for the estimate.",
                ),
            ],
            outputs=[
                RaluPlan.Output(
                    display_name="plan", tooltip="The plan, for RALU KSampler and RALU Edge Mask."
                )
            ],
        )

    # ComfyUI (execution.py, validate_inputs) checks every widget's min / max and combo options itself,
    # except for the inputs that validate_inputs names, and for all of them when it takes **kwargs; it
    # passes validate_inputs only the inputs it names, and turns one failing call into one
    # "custom_validation_failed" entry per named input, each with the same message. So this names only
    # e1 and e2, the two values of the one rule ComfyUI cannot check: a bad e1 or e2 gives two entries
    # (one under each, which is where the frontend marks them), every other bad value exactly one
    # ComfyUI entry with the allowed range or options. Naming `preset` too, to skip the rule for
    # presets, would add a third copy and switch off ComfyUI's check of the preset name; so e1 < e2 is
    # kept with a preset as well, as ComfyUI keeps every unused widget in its range.
    @classmethod
    def validate_inputs(cls, e1=None, e2=None) -> bool | str:
        for k, value in enumerate((e1, e2), start=1):
            if value is not None and not END_MIN <= value <= END_MAX:
                limits = f"between {END_MIN} and {END_MAX}"
                return f"e{k} ({value}) must be {limits}: the progress at which stage {k} ends"
        if e1 is None or e2 is None:
            return True  # a linked value is checked when the node runs
        try:
            validate_ends((e1, e2, 1.0))
        except PlanError as error:
            return f"{error} (the custom plan's stage ends)"
        return True

    @classmethod
    def execute(
        cls, preset, n1, n2, n3, e1, e2, up_ratio, shifts, h1, h2, h3, z, estimate_for, width, height
    ) -> io.NodeOutput:
        result = run_planner(
            preset, n1, n2, n3, e1, e2, up_ratio, shifts, h1, h2, h3, z, estimate_for, width, height
        )
        # The summary in the prompt's history, for API users; the frontend draws the same numbers as a
        # chart from the widgets (plan_preview.py), before and without a run.
        return io.NodeOutput(result.plan, ui=ui.PreviewText(result.summary))
