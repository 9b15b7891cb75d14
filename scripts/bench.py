"""`make bench`: how much faster RALU samples FLUX (or SD3) than the plain sampler, in one process.

Everything runs in-process through ComfyUI's own classes: the diffusion model loaded by
`comfy.sd.load_diffusion_model` (what UNETLoader does), random conditioning of the family's shapes
(tests/comfy_test_nodes' RALUTestConditioning), the plain sampler through `comfy.sample.sample`
(as the workflows' comparison KSampler: FLUX euler / simple at cfg 1, SD3 euler / sgm_uniform at cfg
4.5), RALU through `comfy_glue.run_ralu_ksampler` as the RALU KSampler node calls it (edge_source
"vae", the test models' taef1 or taesd3), and ComfyUI's EasyCache / LazyCache nodes at their default
settings. One model, one seed, one size.

Rows: the plain sampler at the baseline steps (FLUX.1-dev's 50, SD3 Medium's 28); the plain sampler at
as many model calls as each RALU preset (naive step reduction); every RALU preset of the family's base
model; the first of them with latent-gradient edges, with EasyCache and with LazyCache; the plain
sampler with EasyCache. Each row first runs once untimed, counting its
FLOPs with `torch.utils.flop_counter.FlopCounterMode`, which is also the warm-up (models, VAE and
kernels loaded); then the timed rounds run the rows interleaved (A B C A B C ...), and each row's wall
time is the median of its rounds. Every run is under `torch.inference_mode()`, as ComfyUI's executor
runs a prompt.

Modes:
- CPU (default): the random-weight test FLUX (FLUX.1-dev's width, one double block; `make models`) at
  512x512, one timed round, so that the whole table takes under 10 minutes on 2 quiet cores (about 7.5;
  see DEFAULT_SIZE below); `--repeats 3` gives medians in about 14 minutes.
- `--family sd3`: SD3 Medium's width (hidden 1536) with one joint block, random weights built here
  from ComfyUI's classes (the tiny SD3 test models are too small to time: their calls are all fixed
  cost), at 512x512 on the CPU.
- `--gpu`: FLUX.1-dev's dimensions (19 double + 38 single blocks), or with `--family sd3` SD3 Medium's
  (24 joint blocks), random weights built here from ComfyUI's classes, at 1024x1024 in bf16 on a CUDA
  GPU. Written for a CUDA machine but not run yet: none was available where it was written.
- `--model PATH`: a real FLUX (or, with `--family sd3`, SD3) diffusion model file instead (on the CPU,
  or on the GPU with `--gpu`).

The weights are random (except with --model): the pictures are noise, so this says nothing about
quality; it measures cost.

This file runs the rows; bench_rows.py says what they are, bench_meters.py how a run is measured,
bench_models.py builds the random-weight models of real dimensions, bench_table.py makes the table.

    python scripts/bench.py [--family flux|sd3] [--size 512] [--repeats 1] [--rows plain,flux_4x,...]
                            [--text-tokens 77] [--gpu] [--model PATH] [--output bench_output]
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from ralu.cost import PIXELS_PER_TOKEN_SIDE, StepCost  # noqa: E402
from scripts.bench_meters import (  # noqa: E402
    ForwardCounter,
    PeakMemory,
    RowRun,
    Timers,
    flop_counter,
    instrumented,
)
from scripts.bench_models import build_real_dims  # noqa: E402
from scripts.bench_rows import CACHES, FAMILIES, Family, Row, default_rows, lead_preset  # noqa: E402
from scripts.bench_table import fit_step_time, latent_edges_overlap, render, summarise  # noqa: E402
from scripts.model_cost import TAESD_DECODE_FLOPS_PER_PIXEL, model_cost  # noqa: E402
from tests import comfy_path  # noqa: E402
from tests import models as test_models  # noqa: E402

SEED = 20250708  # the shipped workflows' seed
GUIDANCE = 3.5  # FluxGuidance in the workflows
# CPU defaults. One round of the eleven rows is 232 model calls, 143 of them the plain sampler's at full
# resolution. On this project's 2-core machine, quiet, a step of the test FLUX costs about 0.03 s that
# does not shrink with the tokens plus about 0.9 ms per token: a round takes about 3.5 minutes at
# 512x512 with 77 text tokens (CLIP-L's count, as `make demo` gives the test model), and the untimed
# FLOP-counting run of each row about as long, so the default table takes about 7.5 minutes (11 with
# `--repeats 2`). At 256x256 the fixed part is a third of a full-resolution step, and the low-resolution
# steps' share of it keeps RALU's measured speed-ups further below the FLOP model.
DEFAULT_SIZE = 512
DEFAULT_REPEATS = 1
DEFAULT_TEXT_TOKENS = 77
GPU_REPEATS = 3  # FLUX.1-dev at 1024x1024 on a GPU: a round takes about a minute
GPU_SIZE = 1024
# SD3 Medium's width with one joint block (74M parameters): the default SD3 table, whose 28-step rows
# are shorter than FLUX's 50, takes about 4 minutes on 2 quiet cores.
CPU_SD3_BLOCKS = 1


def import_pack():
    """This pack, loaded by ComfyUI's own custom-node loader (nodes.load_custom_node), as a server loads
    it; call after tests.comfy_path.ensure()."""
    import asyncio

    import nodes

    def loaded():
        init = REPO_ROOT / "__init__.py"
        modules = list(sys.modules.values())
        return next((m for m in modules if getattr(m, "__file__", None) and Path(m.__file__) == init), None)

    if loaded() is None and not asyncio.run(nodes.load_custom_node(str(REPO_ROOT))):
        raise SystemExit(f"bench: ComfyUI could not load the pack at {REPO_ROOT} (its log says why)")
    return loaded()


def cache_node_defaults(node) -> dict:
    """The default settings of one of ComfyUI's step-cache nodes, read from its own schema."""
    return {i.id: i.default for i in node.define_schema().inputs if i.id != "model"}


def with_cache(model, cache: str):
    """The model with ComfyUI's EasyCache or LazyCache node applied at the node's defaults."""
    from comfy_extras.nodes_easycache import EasyCacheNode, LazyCacheNode

    node = {"easycache": EasyCacheNode, "lazycache": LazyCacheNode}[cache]
    return node.execute(model, **cache_node_defaults(node)).result[0]


def load_taesd(models_dir: Path, name: str):
    """A TAESD VAE (taef1, taesd3) from `models_dir`/vae_approx, loaded by ComfyUI's VAELoader."""
    import folder_paths
    import nodes

    folder_paths.add_model_folder_path("vae_approx", str(models_dir / "vae_approx"))
    return nodes.VAELoader().load_vae(name)[0]


@dataclass
class Bench:
    """One model, one seed, one size; runs any Row through ComfyUI's own sampling."""

    pack: object
    model: object  # ComfyUI ModelPatcher
    vae: object
    positive: list
    negative: list
    size: int
    family: Family = FAMILIES["flux"]
    seed: int = SEED
    cuda: bool = False
    models: dict = field(init=False)

    def __post_init__(self) -> None:
        import comfy.utils
        import torch

        comfy.utils.PROGRESS_BAR_ENABLED = False  # no tqdm bars in the table's output (both samplers)
        self.glue = sys.modules[f"{self.pack.__name__}.comfy_glue"]
        self.presets = sys.modules[f"{self.pack.__name__}.ralu.plan"].PRESETS
        self.latent = torch.zeros(1, 16, self.size // 8, self.size // 8)
        self.models = {None: self.model, **{c: with_cache(self.model, c) for c in CACHES}}
        self.counter = ForwardCounter(self.model.get_model_object("diffusion_model"))
        self.timers = Timers(torch.cuda.synchronize if self.cuda else lambda: None)
        self.memory = PeakMemory(self.cuda)
        self.early_masks: dict = {}  # each RALU row's last early_mask output

    def close(self) -> None:
        self.counter.close()

    def sample(self, row: Row):
        """Samples the row once, under inference mode as ComfyUI runs a prompt (RALU's stage loop, unlike
        ComfyUI's k-diffusion samplers, does not turn gradients off itself); returns the RALU result (None
        for the plain sampler)."""
        import torch

        with torch.inference_mode():
            return self._sample(row)

    def _sample(self, row: Row):
        import comfy.sample
        import latent_preview

        model = self.models[row.cache]
        if row.preset is None:
            noise = comfy.sample.prepare_noise(self.latent, self.seed)
            callback = latent_preview.prepare_callback(model, row.steps)  # as the KSampler node does
            comfy.sample.sample(
                model, noise, row.steps, self.family.cfg, "euler", self.family.scheduler, self.positive,
                self.negative, self.latent, callback=callback, disable_pbar=True, seed=self.seed,
            )  # fmt: skip
            return None
        _, early_mask, result = self.glue.run_ralu_ksampler(
            model,
            self.positive,
            self.negative,
            {"samples": self.latent},
            self.presets[row.preset],
            self.vae,
            self.seed,
            self.family.cfg,
            None,
            row.edges,
            True,
        )
        self.early_masks[row.key] = early_mask
        return result

    def run(self, row: Row, count_flops: bool = False) -> RowRun:
        """One run of the row, timed; with count_flops, under FlopCounterMode (then the time is not
        the row's: use it for the counts only)."""
        self.timers.reset()
        self.counter.calls = 0
        counting = flop_counter() if count_flops else contextlib.nullcontext()
        self.memory.start()
        with instrumented(self.glue, self.timers), counting:
            cpu, start = time.process_time(), self.timers.now()
            result = self.sample(row)
            seconds, cpu = self.timers.now() - start, time.process_time() - cpu
        peak = self.memory.growth()
        if result is None:
            calls, tokens, skipped = [row.steps], [(self.size // PIXELS_PER_TOKEN_SIDE) ** 2], None
            if row.cache is not None:  # what the plain sampler asked for but the cache answered
                skipped = [row.steps - self.counter.calls]
        else:
            calls, tokens = list(result.calls_per_stage), list(result.tokens_per_stage)
            skipped = result.steps_skipped
        run = RowRun(
            seconds=seconds,
            cpu_seconds=cpu,
            calls=calls,
            tokens=tokens,
            forwards=self.counter.calls,
            steps_skipped=skipped,
            transition_seconds=None if result is None else self.timers.transition,
            edge_seconds=None if result is None else self.timers.edges,
            peak_bytes=peak,
        )
        if count_flops:
            run.flops = float(counting.get_total_flops())
            by_op = counting.get_flop_counts().get("Global", {})
            run.flops_by_op = {str(op): float(n) for op, n in by_op.items()}
        return run


# --- setup --------------------------------------------------------------------------------------------


def conditioning(seed: int, tokens: int, family: Family) -> list:
    """Random CONDITIONING of the family's shapes (T5 context, pooled CLIP, FLUX's guidance), from the
    test node."""
    from tests.comfy_test_nodes import RALUTestConditioning

    return RALUTestConditioning().make(seed, tokens, family.name, GUIDANCE, 1.0)[0]


@dataclass
class Options:
    family: Family
    gpu: bool
    model: Path | None
    size: int
    repeats: int
    text_tokens: int
    rows: list[str] | None
    models_dir: Path
    output: Path


def parse_args(argv: list[str] | None) -> Options:
    parser = argparse.ArgumentParser(
        description="Time RALU against the plain sampler on FLUX or SD3, in-process through ComfyUI's "
        "classes; prints a Markdown table and writes it with a JSON file to --output."
    )
    parser.add_argument(
        "--family", choices=sorted(FAMILIES), default="flux", help="the model family (default flux)"
    )
    parser.add_argument(
        "--gpu",
        action="store_true",
        help="FLUX.1-dev's (or SD3 Medium's) dimensions at 1024x1024, bf16, CUDA",
    )
    parser.add_argument(
        "--model", type=Path, help="a real diffusion model file of the family instead of random weights"
    )
    parser.add_argument(
        "--size",
        type=int,
        help=f"width = height, a multiple of 32 (default {DEFAULT_SIZE}; {GPU_SIZE} with --gpu)",
    )
    parser.add_argument(
        "--repeats",
        type=int,
        help=f"timed rounds, each row's median (default {DEFAULT_REPEATS}; {GPU_REPEATS} with --gpu)",
    )
    parser.add_argument(
        "--text-tokens",
        type=int,
        help=f"text tokens of the random prompt (default {DEFAULT_TEXT_TOKENS}; the real model's with --gpu "
        "or --model: FLUX.1-dev's 512, SD3's 333)",
    )
    parser.add_argument(
        "--rows", help="comma-separated row keys (the baseline 'plain' always runs); see --list"
    )
    parser.add_argument("--list", action="store_true", help="list the row keys and exit")
    default_models = os.environ.get("RALU_TEST_MODELS_DIR") or str(test_models.DEFAULT_DIR)
    parser.add_argument(
        "--models-dir", type=Path, default=Path(default_models), help="the test models (taef1, taesd3)"
    )
    parser.add_argument(
        "--output", type=Path, default=REPO_ROOT / "bench_output", help="folder for the results"
    )
    opts = parser.parse_args(argv)
    family = FAMILIES[opts.family]
    if opts.list:
        from ralu.plan import PRESETS

        for row in default_rows(PRESETS, family):
            print(f"{row.key:20} {row.label}")
        raise SystemExit(0)
    size = opts.size or (GPU_SIZE if opts.gpu else DEFAULT_SIZE)
    if size % 32 or size < 128:
        parser.error("--size must be a multiple of 32, at least 128")
    repeats = opts.repeats if opts.repeats is not None else GPU_REPEATS if opts.gpu else DEFAULT_REPEATS
    if repeats < 1:
        parser.error("--repeats must be at least 1")
    tokens = opts.text_tokens or (family.gpu_text_tokens if opts.gpu or opts.model else DEFAULT_TEXT_TOKENS)
    rows = None if opts.rows is None else [r.strip() for r in opts.rows.split(",") if r.strip()]
    if rows is not None:
        from ralu.plan import PRESETS

        unknown = set(rows) - {row.key for row in default_rows(PRESETS, family)}
        if unknown:
            parser.error(f"unknown --rows {', '.join(sorted(unknown))}; --list shows them")
    return Options(
        family, opts.gpu, opts.model, size, repeats, tokens, rows, opts.models_dir.resolve(), opts.output
    )


def setup(opts: Options) -> tuple[Bench, StepCost, str]:
    """ComfyUI in this process, the model, VAE and prompt: the bench, the FLOP model of the model that
    runs and a description of it."""
    import torch

    if opts.gpu and not torch.cuda.is_available():
        raise SystemExit(
            f"bench --gpu needs a CUDA GPU, and torch {torch.__version__} sees none "
            "(torch.cuda.is_available() is False). Without --gpu the bench runs on the CPU."
        )
    comfy_path.ensure()
    from comfy.cli_args import args

    args.cpu = not opts.gpu  # ensure() switched ComfyUI to the CPU; --gpu switches it back before it loads
    import comfy.model_management as mm
    import comfy.sd

    pack = import_pack()
    device = mm.get_torch_device()
    family = opts.family
    if opts.model is not None:
        model = comfy.sd.load_diffusion_model(str(opts.model))
        origin = f"{opts.model.name} (real weights, loaded by comfy.sd.load_diffusion_model)"
    elif opts.gpu:
        model = build_real_dims(family, device, torch.bfloat16, SEED)
        origin = f"{family.real_model}'s dimensions with random weights, built here from ComfyUI's classes"
    elif family.name == "sd3":
        model = build_real_dims(family, device, torch.float32, SEED, sd3_blocks=CPU_SD3_BLOCKS)
        origin = (
            f"SD3 Medium's width with {CPU_SD3_BLOCKS} of its 24 joint blocks, random weights built here "
            "from ComfyUI's classes"
        )
    else:
        path = opts.models_dir / "diffusion_models" / test_models.FLUX_DEV
        if not path.is_file():
            raise SystemExit(f"bench: no test model at {path}; run `make models` first")
        model = comfy.sd.load_diffusion_model(str(path))
        origin = f"{path.name}, the random-weight test FLUX (loaded by comfy.sd.load_diffusion_model)"
    diffusion_model = model.get_model_object("diffusion_model")
    shapes = {k: tuple(v.shape) for k, v in diffusion_model.state_dict().items()}
    try:
        cost, dims = model_cost(shapes, family.name, opts.text_tokens)
    except ValueError as err:
        raise SystemExit(
            f"bench: the model is no diffusion model of the {family.name} family ({err}); --family chooses it"
        ) from err
    dtype = str(model.model.get_dtype()).replace("torch.", "")
    what = f"{origin}: {dims}; {dtype} on {device}"
    bench = Bench(
        pack,
        model,
        load_taesd(opts.models_dir, family.vae),
        conditioning(1, opts.text_tokens, family),
        conditioning(2, opts.text_tokens, family),
        opts.size,
        family,
        cuda=device.type == "cuda",
    )
    return bench, cost, what


def sampling_settings(family: Family) -> str:
    guidance = f" (FLUX guidance {GUIDANCE})" if family.name == "flux" else ""
    return f"cfg {family.cfg:g}{guidance}, euler / {family.scheduler}"


def main(argv: list[str] | None = None) -> int:
    opts = parse_args(argv)
    started = time.monotonic()
    load_before = os.getloadavg()
    bench, run_cost, what = setup(opts)
    family = bench.family
    rows = default_rows(bench.presets, family)
    if opts.rows is not None:
        rows = [r for r in rows if r.is_baseline or r.key in opts.rows]
    mode = "GPU" if bench.cuda else "CPU"
    print(f"bench ({mode}): {opts.size}x{opts.size}, {opts.text_tokens} text tokens, seed {bench.seed}, "
          f"{opts.repeats} timed rounds of {len(rows)} rows; model: {what}", flush=True)  # fmt: skip

    print("FLOP count and warm-up (untimed, FlopCounterMode): one run of each row ...", flush=True)
    flops = {}
    for row in rows:
        flops[row.key] = bench.run(row, count_flops=True)
        print(f"  {row.label}: {flops[row.key].flops / 1e12:.3f} TFLOP", flush=True)
    timed: dict[str, list[RowRun]] = {row.key: [] for row in rows}
    for round_ in range(opts.repeats):
        print(f"timed round {round_ + 1} of {opts.repeats}:", flush=True)
        for row in rows:
            run = bench.run(row)
            timed[row.key].append(run)
            print(f"  {row.label}: {run.seconds:.2f} s (CPU {run.cpu_seconds:.1f} s)", flush=True)
    bench.close()

    results = summarise(bench, rows, flops, timed, run_cost)
    elapsed = time.monotonic() - started
    load_after = os.getloadavg()
    header = [
        f"RALU bench ({mode}): {opts.size}x{opts.size}, seed {bench.seed}, {opts.text_tokens} text tokens, "
        f"{sampling_settings(family)}; {what}. RALU's edge source: a {family.vae} VAE (random weights).",
        f"{opts.repeats} timed round(s), the rows interleaved (A B C A B C ...), each row's median; before "
        "them one untimed run of each row under FlopCounterMode (also the warm-up).",
        "The weights are random: the pictures are noise, and nothing here says anything about quality.",
    ]
    if not bench.cuda:
        header.append(
            f"CPU defaults: {DEFAULT_SIZE}x{DEFAULT_SIZE}, {DEFAULT_TEXT_TOKENS} text tokens, "
            f"{DEFAULT_REPEATS} timed round, so that the whole default table takes about "
            f"{family.cpu_minutes:g} minutes on 2 quiet cores (the FLOP-counting round is a second round); "
            "`--repeats 3` gives medians in about twice that; `--size`, `--text-tokens`, `--rows` change "
            "the rest."
        )
    notes = [
        "Speed-up: the baseline's median wall time over the row's. CPU-time speed-up: the same with the "
        "process's CPU time, which other work on a shared machine disturbs less.",
        "FLOP model: ralu/cost.py's formula (a (L+T) + b (L+T)^2 per step, plus RALU's edge decode) for what "
        f"the row ran (a cache's skipped steps left out) against {family.baseline_steps} plain steps. "
        "'Model run': with the constants of the model that ran (scripts/model_cost.py: its parameters, width "
        "and blocks, the text tokens above, the TAESD decode at "
        f"{TAESD_DECODE_FLOPS_PER_PIXEL / 1e6:.2f}e6 FLOPs per pixel); '{family.real_model}': "
        f"{family.real_model}'s ({family.gpu_text_tokens} text tokens, the KL decoder) at the same size.",
        "FLOPs counted: torch.utils.flop_counter.FlopCounterMode over one whole run of the row (matrix "
        "products, attention, the edge decode's convolutions); in brackets the baseline's count over the "
        "row's.",
        "Transition: the time from a stage's last model call to the next stage's start (edge scoring, token "
        "selection, re-noise, layout change) over the row's wall time, median of the rounds; in brackets the "
        "edge scoring (VAE decode + Canny) alone. Timed by wrapping comfy_glue's predict_x0, step-cache "
        "stage hook and edge scorer in the bench.",
        f"Peak memory: {bench.memory.method}, the largest of the rounds.",
    ]
    overlap = latent_edges_overlap(bench.early_masks, bench.presets, family)
    if overlap is not None:
        shared, chosen = overlap
        lead = lead_preset(bench.presets, family)
        notes.append(
            f"Latent-gradient edges: of the {chosen} low-res cells RALU {lead} upsampled early from the "
            f"VAE decode's Canny edges, the latent-gradient row chose {shared} too "
            f"({100 * shared / chosen:.0f}%), with no decode. On random weights this says nothing about "
            "which choice is better."
        )
    fit = fit_step_time(results, opts.text_tokens)
    if fit is not None:
        fixed, per_token = fit
        full = (opts.size // PIXELS_PER_TOKEN_SIDE) ** 2 + opts.text_tokens
        share = fixed / (fixed + per_token * full)
        notes.append(
            f"Step time, fitted to the rows without a cache (wall time less transitions = calls x fixed + "
            f"token-calls x per token): {fixed:.3f} s per model call whatever its tokens + "
            f"{1e3 * per_token:.2f} ms per token, so the fixed part is {100 * share:.0f}% of a "
            f"full-resolution step ({full} tokens). RALU's low-resolution steps pay it in full; the FLOP "
            "model has no such term."
        )
    notes.append(
        f"Whole bench: {elapsed:.0f} s; load average (1 min) {load_before[0]:.1f} before, "
        f"{load_after[0]:.1f} after."
    )
    text = render(results, header, notes, bench.cuda, family.real_model)
    print("\n" + text)
    opts.output.mkdir(parents=True, exist_ok=True)
    (opts.output / "bench.md").write_text(text + "\n")
    config = {
        "mode": mode,
        "family": family.name,
        "size": opts.size,
        "text_tokens": opts.text_tokens,
        "repeats": opts.repeats,
        "seed": bench.seed,
        "model": what,
        "run_model_cost": dataclasses.asdict(run_cost),
        "seconds_total": elapsed,
        "load_average_before": load_before,
        "load_average_after": load_after,
    }
    (opts.output / "bench.json").write_text(json.dumps({"config": config, "rows": results}, indent=1) + "\n")
    print(f"\n(also in {opts.output / 'bench.md'} and bench.json)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
