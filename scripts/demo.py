"""`make demo`: run the shipped RALU workflows and their plain comparisons through a real ComfyUI
server's HTTP API, save the pictures under demo_output/ and print what each cost: FLUX (RALU 4x and 7x
against 50 plain steps), FLUX.1-schnell (RALU flux_schnell against 4 plain steps) and SD3 (RALU sd3_2x
and sd3_3x against 28 plain steps).

Models: the random-weight test models (`make models`), unless COMFYUI_DIR points at a ComfyUI whose
models folder has the stock files the workflows name (FLUX.1-dev: flux1-dev.safetensors,
t5xxl_fp16.safetensors + clip_l.safetensors, ae.safetensors; FLUX.1-schnell: flux1-schnell.safetensors
and the same; SD3 Medium:
sd3_medium_incl_clips_t5xxlfp16.safetensors) for every family run: then those, unchanged.

Each graph comes from workflows/*.json through scripts/workflow_api.py, as a user would queue it; a
family's comparison is the muted group of its first workflow, enabled. Everything runs once untimed
first (models loaded, text encoded), then each graph is timed by the server: from its execution_start
to its execution_success message, so the loaders and text encoders (cached from the warm-up) are not
counted; sampling, the VAE decode and saving the PNG are.

    python scripts/demo.py [--size 256] [--families flux,flux_schnell,sd3] [--models auto|test|real]
                           [--repeat 1] [--output demo_output]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from ralu.cost import COST_MODELS, estimate_speedup_for  # noqa: E402
from ralu.plan import PRESET_MODEL, PRESETS  # noqa: E402
from scripts.model_cost import TAESD_DECODE_FLOPS_PER_PIXEL, run_model_cost  # noqa: E402
from scripts.workflow_api import (  # noqa: E402
    BASELINE_GROUP,
    MODE_ALWAYS,
    STOCK_MODELS,
    STOCK_SCHNELL_MODELS,
    STOCK_SD3_CHECKPOINT,
    find_nodes,
    load_workflow,
    prune_to,
    replacements_for_test_models,
    set_group_mode,
    substitute,
    to_api,
)
from tests import models as test_models  # noqa: E402
from tests.comfy_path import HostNotFound, find_host  # noqa: E402
from tests.host import start_host  # noqa: E402

WORKFLOW_DIR = REPO_ROOT / "workflows"
# Measured on 2 CPU cores: `make demo` (models cached) takes about 4 1/2 minutes at 512x512, most of it
# the 50-step FLUX comparison (~165 s); 256x256 takes under 2 minutes, but there the 77 text tokens are
# a quarter of every step's tokens and per-step overheads weigh more (`--size 256`). The tiny SD3's part
# (warm-up, RALU sd3_2x and sd3_3x, 28 plain steps) adds under a minute, even on a busy machine.
TEST_SIZE = 512
CLIP_L_TOKENS = 77  # what the test models' text path (CLIP-L through CLIPLoader "sd3") gives either family


@dataclass(frozen=True)
class Family:
    """One model family's part of the demo: its workflows, their comparison and its models."""

    name: str  # the model the presets are for (ralu.plan.Plan.model): "flux", "flux_schnell" or "sd3"
    presets: tuple[str, ...]  # workflows/ralu_<preset>.json; the first one's muted group is the comparison
    baseline_steps: int
    baseline_prefix: str  # the comparison's SaveImage prefix
    test_unet: str  # the test model's file in diffusion_models
    stock_files: str  # the stock files, for messages

    @property
    def reference(self) -> str:
        """The real model the presets are for (the FLOP model's dimensions)."""
        return COST_MODELS[PRESET_MODEL[self.presets[0]]].label

    def reference_speedup(self, preset: str, size: int) -> float:
        """The FLOP model's speed-up of a preset on the real model it is for, against the comparison."""
        cost = COST_MODELS[PRESET_MODEL[preset]].step
        return estimate_speedup_for(cost, PRESETS[preset], size, size, self.baseline_steps).speedup


FAMILIES = {
    "flux": Family(
        "flux",
        ("flux_4x", "flux_7x"),
        50,
        "FLUX_50_steps",
        test_models.FLUX_DEV,
        "flux1-dev.safetensors, t5xxl_fp16 + clip_l, ae.safetensors",
    ),
    "flux_schnell": Family(
        "flux_schnell",
        ("flux_schnell",),
        4,
        "FLUX_schnell_4_steps",
        test_models.FLUX_SCHNELL,
        "flux1-schnell.safetensors, t5xxl_fp16 + clip_l, ae.safetensors",
    ),
    "sd3": Family("sd3", ("sd3_2x", "sd3_3x"), 28, "SD3_28_steps", test_models.SD3, STOCK_SD3_CHECKPOINT),
}


@dataclass
class Run:
    name: str
    family: Family
    steps: str
    tokens: str
    seconds: float
    flop_speedup: float
    run_model_flop_speedup: float | None
    images: list[Path]
    baseline: bool = False


def server_seconds(entry: dict) -> float:
    """Execution time the server measured: execution_start -> execution_success (ms timestamps)."""
    stamps = {event: data.get("timestamp") for event, data in entry["status"]["messages"]}
    return (stamps["execution_success"] - stamps["execution_start"]) / 1000.0


def stock_models_available(object_info: dict, family: str = "flux") -> bool:
    def options(node: str, name: str) -> list:
        spec = object_info.get(node, {}).get("input", {}).get("required", {}).get(name)
        return spec[0] if spec and isinstance(spec[0], list) else []

    if family == "sd3":
        return STOCK_SD3_CHECKPOINT in options("CheckpointLoaderSimple", "ckpt_name")
    stock = STOCK_SCHNELL_MODELS if family == "flux_schnell" else STOCK_MODELS
    return (
        stock["unet_name"] in options("UNETLoader", "unet_name")
        and set(stock["clip_names"]) <= set(options("DualCLIPLoader", "clip_name1"))
        and stock["vae_name"] in options("VAELoader", "vae_name")
    )


def install_models_yaml(comfy_dir: Path, path: Path) -> Path:
    """An extra_model_paths.yaml for the models folder of the install at comfy_dir (the demo's server has
    its own base directory, so it would not see them otherwise)."""
    models = comfy_dir / "models"
    path.write_text(
        "comfyui_install:\n"
        f"    base_path: {json.dumps(str(models))}\n"
        "    checkpoints: checkpoints\n"
        "    diffusion_models: |\n        diffusion_models\n        unet\n"
        "    text_encoders: |\n        text_encoders\n        clip\n"
        "    vae: vae\n"
        "    vae_approx: vae_approx\n"
    )
    return path


def as_preview(prompt: dict) -> dict:
    """The prompt with its SaveImage nodes turned into PreviewImage (temp files), for untimed runs."""
    prompt = json.loads(json.dumps(prompt))
    for node in prompt.values():
        if node["class_type"] == "SaveImage":
            node["class_type"] = "PreviewImage"
            node["inputs"].pop("filename_prefix", None)
    return prompt


def timed(host, label: str, prompt: dict, timeout: float) -> dict:
    print(f"  {label} ...", end="", flush=True)
    entry = host.run(prompt, timeout=timeout)
    print(f" {server_seconds(entry):.1f} s", flush=True)
    return entry


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Run the shipped RALU workflows (FLUX 4x / 7x, SD3 2x / 3x) and their plain comparisons "
        "(FLUX 50 steps, SD3 28 steps) through a real ComfyUI server; save the pictures and print a timing "
        "table."
    )
    parser.add_argument(
        "--size",
        type=int,
        default=None,
        help=f"image width = height (default {TEST_SIZE} on the test models, the workflows' "
        "1024 on the real ones); a multiple of 32",
    )
    parser.add_argument(
        "--models",
        choices=("auto", "test", "real"),
        default="auto",
        help="auto: the real files (FLUX.1-dev, SD3 Medium) if COMFYUI_DIR's install has those of every "
        "family run, else the test models",
    )
    parser.add_argument(
        "--families",
        default=",".join(FAMILIES),
        help=f"comma-separated model families to run (default {','.join(FAMILIES)})",
    )
    default_models = os.environ.get("RALU_TEST_MODELS_DIR") or str(test_models.DEFAULT_DIR)
    parser.add_argument(
        "--models-dir", default=default_models, help="where `make models` put the test models"
    )
    parser.add_argument("--output", default=str(REPO_ROOT / "demo_output"), help="folder for the pictures")
    parser.add_argument("--seed", type=int, default=None, help="seed (default: the workflows' own)")
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds allowed per graph")
    parser.add_argument("--repeat", type=int, default=1, help="rounds of timed runs; the fastest counts")
    opts = parser.parse_args(argv)
    if opts.size is not None and (opts.size % 32 or opts.size < 256):
        parser.error("--size must be a multiple of 32, at least 256")
    if opts.repeat < 1:
        parser.error("--repeat must be at least 1")
    opts.families = [f.strip() for f in opts.families.split(",") if f.strip()]
    if not opts.families or set(opts.families) - set(FAMILIES):
        parser.error(f"--families must name some of {', '.join(FAMILIES)}")

    try:
        host_info = find_host()
    except HostNotFound as err:
        print(f"demo: {err}", file=sys.stderr)
        return 2
    models_dir = Path(opts.models_dir).resolve()
    out_dir = Path(opts.output).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    base_dir = Path(tempfile.mkdtemp(prefix="ralu-demo-"))
    extra_args = ["--output-directory", str(out_dir)]
    if os.environ.get("COMFYUI_DIR") and opts.models != "test":
        yaml = install_models_yaml(host_info.comfy_dir, base_dir / "install_models.yaml")
        extra_args += ["--extra-model-paths-config", str(yaml)]

    total_start = time.monotonic()
    print(f"starting ComfyUI ({host_info.comfy_dir}) with its own base folder {base_dir} ...", flush=True)
    host = start_host(base_dir, models_dir, extra_args=tuple(extra_args))
    print(f"  up in {host.start_seconds:.1f} s at {host.url}", flush=True)
    try:  # a failed prompt raises with the server log's tail in its message
        runs, header = demo(host, opts, models_dir, out_dir)
    finally:
        host.stop()
        shutil.rmtree(base_dir, ignore_errors=True)
    table = render(runs, header)
    print("\n" + table)
    (out_dir / "demo_results.md").write_text(table + "\n")
    elapsed = time.monotonic() - total_start
    print(f"\n(table also in {out_dir / 'demo_results.md'}; the whole demo took {elapsed:.0f} s)")
    return 0


def demo(host, opts, models_dir: Path, out_dir: Path) -> tuple[list[Run], list[str]]:
    object_info = host.object_info()
    families = [FAMILIES[name] for name in opts.families]
    missing = [f for f in families if not stock_models_available(object_info, f.name)]
    if opts.models == "real" and missing:
        raise SystemExit(
            "demo: --models real, but the server lists no "
            + "; ".join(f.stock_files for f in missing)
            + " (set COMFYUI_DIR to the ComfyUI install that has them, or choose --families)"
        )
    real = not missing and opts.models != "test"
    size = opts.size or (1024 if real else TEST_SIZE)
    header_models, seeds = [], set()
    runs: list[Run] = []
    for family in families:
        print(f"{family.reference}:", flush=True)
        family_runs, model_line, seed = demo_family(
            host, opts, object_info, family, real, size, models_dir, out_dir
        )
        runs += family_runs
        header_models.append(model_line)
        seeds.add(seed)
    noise = "" if real else " The test models' pictures are noise: the timings and early masks are the point."
    header = [
        f"RALU demo: {size}x{size}, seed {', '.join(map(str, sorted(seeds)))}, on "
        + "; ".join(header_models)
        + "."
        + noise,
        f"Server: {host.url}. Wall time = the server's execution time of the graph (sampling + VAE decode + "
        "PNG), with the models loaded and the prompt encoded beforehand.",
    ]
    return runs, header


def demo_family(
    host, opts, object_info: dict, family: Family, real: bool, size: int, models_dir: Path, out_dir: Path
) -> tuple[list[Run], str, int]:
    """Warm up, then time the family's RALU workflows and its plain comparison: their rows (baseline
    first), a description of the models run and the seed."""
    if real:
        replacements = {"width": size, "height": size}
    else:
        replacements = replacements_for_test_models(size, size, model=family.name)
    if opts.seed is not None:
        replacements["seed"] = opts.seed

    workflows = {p: load_workflow(WORKFLOW_DIR / f"ralu_{p}.json") for p in family.presets}
    ralu_prompts = {p: substitute(to_api(wf, object_info), replacements) for p, wf in workflows.items()}
    first = workflows[family.presets[0]]
    with_baseline = to_api(set_group_mode(first, BASELINE_GROUP, MODE_ALWAYS), object_info)
    baseline_save = find_nodes(with_baseline, "SaveImage", filename_prefix=family.baseline_prefix)
    baseline = substitute(prune_to(with_baseline, baseline_save), replacements)
    (base_sampler,) = find_nodes(baseline, "KSampler")
    seeds = {baseline[base_sampler]["inputs"]["seed"]}
    for prompt in ralu_prompts.values():
        seeds |= {prompt[n]["inputs"]["seed"] for n in find_nodes(prompt, "RALUKSampler")}
    assert len(seeds) == 1, f"the graphs should share one seed, got {seeds}"
    assert baseline[base_sampler]["inputs"]["steps"] == family.baseline_steps
    (seed,) = seeds

    if real:
        model_line = f"the real {family.reference} files named in the workflows ({family.stock_files})"
        run_cost = None
    else:
        unet = models_dir / "diffusion_models" / family.test_unet
        run_cost, what = run_model_cost(unet, PRESETS[family.presets[0]].family, CLIP_L_TOKENS)
        vae = replacements["vae_name"]
        model_line = (
            f"the random-weight TEST model ({what}; CLIP-L text, {vae} VAE) in place of {family.reference}"
        )
    print(f"  on {model_line}", flush=True)

    print("  warm-up (untimed): load the models, encode the prompt, one step of each sampler ...", flush=True)
    warm_base = as_preview(substitute(baseline, {"steps": 1}))
    timed(host, "plain KSampler, 1 step", warm_base, opts.timeout)
    warm_ralu = as_preview(ralu_prompts[family.presets[-1]])
    for node_id in find_nodes(warm_ralu, "RALUStagePlanner"):
        warm_ralu[node_id]["inputs"].update(preset="custom", n1=1, n2=1, n3=1)
    timed(host, "RALU KSampler, 1 + 1 + 1 steps", warm_ralu, opts.timeout)

    print(f"  timed runs ({opts.repeat} x each graph; the fastest counts):", flush=True)
    graphs = [(f"RALU {p}", p, prompt) for p, prompt in ralu_prompts.items()]
    graphs.append((f"plain KSampler ({family.reference}, {family.baseline_steps} steps)", None, baseline))
    # Rounds alternate the graphs, so none is answered from ComfyUI's cache of the previous prompt.
    best: dict[str, tuple[float, dict]] = {}
    images: dict[str, list[Path]] = {}
    for _ in range(opts.repeat):
        for label, _preset, prompt in graphs:
            entry = timed(host, label, prompt, opts.timeout)
            images[label] = images.get(label, []) + save_outputs(host, entry, prompt, out_dir)
            if label not in best or server_seconds(entry) < best[label][0]:
                best[label] = (server_seconds(entry), entry)

    full = (size // 16) ** 2
    runs = []
    for label, preset, prompt in graphs:
        seconds, entry = best[label]
        if preset is None:
            run_flops = None if run_cost is None else 1.0
            steps, tokens = str(family.baseline_steps), str(full)
            runs.insert(0, Run(label, family, steps, tokens, seconds, 1.0, run_flops, images[label], True))
            continue
        plan = PRESETS[preset]
        (sampler,) = find_nodes(prompt, "RALUKSampler")
        text = " ".join(entry["outputs"].get(sampler, {}).get("text", []))
        if "tokens per stage: " in text:  # the sampler's own count, from its UI output
            tokens = text.split("tokens per stage: ")[1].split(";")[0]
        else:  # from the plan, as the sampler counts them
            low = (size // 32) ** 2
            tokens = f"{low}, {low + 3 * int(low * plan.up_ratio)}, {full}"
        estimate = family.reference_speedup(preset, size)
        run_flops = (
            None
            if run_cost is None
            else estimate_speedup_for(run_cost, plan, size, size, family.baseline_steps).speedup
        )
        steps = ", ".join(map(str, plan.steps))
        runs.append(Run(label, family, steps, tokens, seconds, estimate, run_flops, images[label]))
    return runs, model_line, seed


def save_outputs(host, entry: dict, prompt: dict, out_dir: Path) -> list[Path]:
    """The saved pictures (already in out_dir: it is the server's output folder) plus the early-mask
    previews, copied from the server's temp folder next to the picture they belong to."""
    saved, previews = [], []
    for node_id, output in entry["outputs"].items():
        for ref in output.get("images", []):
            if prompt[node_id]["class_type"] == "SaveImage":
                saved.append(out_dir / ref.get("subfolder", "") / ref["filename"])
            elif prompt[node_id]["class_type"] == "PreviewImage":
                previews.append(ref)
    for i, ref in enumerate(previews):
        stem = saved[0].stem.rstrip("_") if saved else "preview"
        path = out_dir / f"{stem}_early_mask{'' if i == 0 else f'_{i}'}.png"
        path.write_bytes(host.view(ref))
        saved.append(path)
    return saved


def render(runs: list[Run], header: list[str]) -> str:
    """The table: each family's plain KSampler row, then its RALU rows, each timed against that row."""
    with_run_model = runs[0].run_model_flop_speedup is not None
    cols = ["graph", "steps per stage", "tokens per stage", "wall time", "measured speed-up"]
    cols += ["FLOP model (the preset's model)"] + (["FLOP model, the model run"] if with_run_model else [])
    rows, baseline = [], {}
    for run in runs:
        if run.baseline:
            baseline[run.family.name] = run.seconds
        row = [
            run.name,
            run.steps,
            run.tokens,
            f"{run.seconds:.1f} s",
            f"{baseline[run.family.name] / run.seconds:.2f}x",
            f"{run.flop_speedup:.2f}x",
        ]
        if with_run_model:
            row.append(f"{run.run_model_flop_speedup:.2f}x")
        rows.append(row)
    widths = [max(len(c), *(len(r[i]) for r in rows)) for i, c in enumerate(cols)]

    def line(cells):
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths)) + " |"

    lines = [*header, "", line(cols), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    lines += [line(r) for r in rows]
    lines.append("")
    families = list(dict.fromkeys(run.family for run in runs))
    for family in families:
        at_1024 = ", ".join(f"{p} {family.reference_speedup(p, 1024):.2f}x" for p in family.presets)
        lines.append(
            f"FLOP model (the preset's model), {family.name}: ralu/cost.py's estimate with "
            f"{family.reference}'s dimensions against {family.baseline_steps} steps at this size; at "
            f"1024x1024: {at_1024}."
        )
    if with_run_model:
        lines.append(
            "FLOP model, the model run: the same formula with the constants of the test model that ran (its "
            "parameters and blocks read from the file, 77 CLIP-L text tokens, the TAESD edge decode's "
            f"{TAESD_DECODE_FLOPS_PER_PIXEL / 1e6:.2f}e6 FLOPs per pixel)."
        )
        ratios = ", ".join(
            f"{run.name} {baseline[run.family.name] / run.seconds / run.run_model_flop_speedup:.2f}"
            for run in runs
            if not run.baseline
        )
        lines.append(
            f"Measured / FLOP model of the model run: {ratios}. On a CPU with a 1- or 2-block model the "
            "measured speed-up can fall below the FLOP model (costs that do not shrink with the token "
            "count: Python and sampler overhead, RALU's stage changes and edge decode, the tiny SD3 most of "
            "all) or rise above it (matrix products over many tokens run less efficiently than over few). "
            "Timings on a shared machine also vary from run to run: `--repeat 3` keeps each graph's fastest. "
            "On FLUX.1-dev or SD3 Medium at 1024x1024 on a GPU the transformer dominates every step, which "
            "is what the FLOP model describes."
        )
    paths = [
        p.relative_to(REPO_ROOT) if p.is_relative_to(REPO_ROOT) else p for run in runs for p in run.images
    ]
    lines.append("Pictures: " + ", ".join(map(str, paths)))
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
