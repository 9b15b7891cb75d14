"""`make bench`: how much faster RALU samples FLUX than the plain sampler, in one process.

Everything runs in-process through ComfyUI's own classes: the diffusion model loaded by
`comfy.sd.load_diffusion_model` (what UNETLoader does), random conditioning of FLUX's shapes
(tests/comfy_test_nodes' RALUTestConditioning), the plain sampler through `comfy.sample.sample`
(euler, simple, cfg 1, as the workflows' comparison KSampler), RALU through
`comfy_glue.run_ralu_ksampler` as the RALU KSampler node calls it (edge_source "vae", a taef1 VAE), and
ComfyUI's EasyCache / LazyCache nodes at their default settings. One model, one seed, one size.

Rows: the plain sampler at FLUX.1-dev's 50 steps (the baseline); the plain sampler at as many model
calls as each RALU preset (naive step reduction); every FLUX RALU preset; RALU flux_4x with EasyCache
and with LazyCache; the plain sampler with EasyCache. Each row first runs once untimed, counting its
FLOPs with `torch.utils.flop_counter.FlopCounterMode`, which is also the warm-up (models, VAE and
kernels loaded); then the timed rounds run the rows interleaved (A B C A B C ...), and each row's wall
time is the median of its rounds. Every run is under `torch.inference_mode()`, as ComfyUI's executor
runs a prompt.

Modes:
- CPU (default): the random-weight test FLUX (FLUX.1-dev's width, one double block; `make models`) at
  512x512, one timed round, so that the whole table takes under 10 minutes on 2 quiet cores (about 7.5;
  see DEFAULT_SIZE below); `--repeats 3` gives medians in about 14 minutes.
- `--gpu`: FLUX.1-dev's dimensions (19 double + 38 single blocks, random weights built here from
  ComfyUI's classes) at 1024x1024 in bf16 on a CUDA GPU. Written for a CUDA machine but not run yet:
  none was available where it was written.
- `--model PATH`: a real FLUX checkpoint file instead (on the CPU, or on the GPU with `--gpu`).

The weights are random (except with --model): the pictures are noise, so this says nothing about
quality; it measures cost.

    python scripts/bench.py [--size 512] [--repeats 1] [--rows plain,flux_4x,...] [--text-tokens 77]
                            [--gpu] [--model PATH] [--output bench_output]
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import ctypes.util
import dataclasses
import gc
import json
import math
import os
import statistics
import sys
import time
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from ralu.cost import FAMILY_COST, PIXELS_PER_TOKEN_SIDE, StepCost, estimate_speedup_for  # noqa: E402
from scripts.model_cost import TAESD_DECODE_FLOPS_PER_PIXEL, model_cost  # noqa: E402
from tests import comfy_path  # noqa: E402
from tests import models as test_models  # noqa: E402

BASELINE_STEPS = 50  # FLUX.1-dev's usual step count: the workflows' comparison KSampler
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
GPU_TEXT_TOKENS = 512  # FLUX.1-dev's T5 tokens
FLUX_DEV_DEPTH = {"depth": 19, "depth_single_blocks": 38}
CACHES = ("easycache", "lazycache")
# RALU flux_4x with its edges from a gradient kernel on the stage-1 latent (no decode): its selection is
# compared with the same run's VAE path.
LATENT_EDGES_ROW = "flux_4x+latent"


@dataclass(frozen=True)
class Row:
    """One way of sampling: the plain sampler for `steps` steps, or RALU with `preset`; either with a
    step cache ("easycache" / "lazycache") or without."""

    key: str  # its name for --rows
    label: str
    steps: int | None = None
    preset: str | None = None
    cache: str | None = None
    edges: str = "vae"  # RALU KSampler's edge_source

    @property
    def is_baseline(self) -> bool:
        return self.preset is None and self.cache is None and self.steps == BASELINE_STEPS


def default_rows(presets: dict, baseline_steps: int = BASELINE_STEPS) -> list[Row]:
    """The table's rows, baseline first, for the FLUX.1-dev presets in `presets` (ralu.plan.PRESETS; the
    schnell preset is for another model, which a dev-shaped model refuses)."""
    flux = [plan for plan in presets.values() if plan.model == "flux"]
    rows = [Row("plain", f"plain sampler, {baseline_steps} steps", steps=baseline_steps)]
    for steps in dict.fromkeys(plan.total_steps for plan in flux):
        names = ", ".join(p.name for p in flux if p.total_steps == steps)
        rows.append(Row(f"naive{steps}", f"plain sampler, {steps} steps (as {names})", steps=steps))
    rows += [Row(plan.name, f"RALU {plan.name}", preset=plan.name) for plan in flux]
    rows.append(
        Row(
            LATENT_EDGES_ROW, "RALU flux_4x, latent-gradient edges", preset="flux_4x", edges="latent gradient"
        )
    )
    label = {"easycache": "EasyCache", "lazycache": "LazyCache"}
    rows += [Row(f"flux_4x+{c}", f"RALU flux_4x + {label[c]}", preset="flux_4x", cache=c) for c in CACHES]
    plain_cached = f"plain sampler, {baseline_steps} steps + EasyCache"
    rows.append(Row("plain+easycache", plain_cached, steps=baseline_steps, cache="easycache"))
    return rows


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


def load_taef1(models_dir: Path):
    """The taef1 VAE from `models_dir`/vae_approx, loaded by ComfyUI's VAELoader."""
    import folder_paths
    import nodes

    folder_paths.add_model_folder_path("vae_approx", str(models_dir / "vae_approx"))
    return nodes.VAELoader().load_vae("taef1")[0]


# --- measurements -------------------------------------------------------------------------------------


class Timers:
    """Where a RALU run spends the time that is not model calls: installed into comfy_glue by
    `instrumented` (the bench's own wrappers; the product code is untouched).

    A transition is the time from the return of a stage's last model call to the start of the next
    stage (edge scoring, token selection, re-noise, the layout change and that step's Euler update).
    """

    def __init__(self, sync: Callable[[], None]) -> None:
        self.sync = sync
        self.reset()

    def reset(self) -> None:
        self.transition = 0.0
        self.edges = 0.0
        self.last_return: float | None = None

    def now(self) -> float:
        self.sync()
        return time.perf_counter()


@contextlib.contextmanager
def instrumented(glue, timers: Timers) -> Iterator[None]:
    """Wraps comfy_glue's predict_x0 factory, step-cache stage hook and edge scorer with timers."""
    names = ("model_caller", "StepCacheStages", "EdgeSource")
    originals = {name: getattr(glue, name) for name in names}

    def model_caller(*args, **kwargs):
        predict_x0 = originals["model_caller"](*args, **kwargs)

        def timed(*call_args):
            x0 = predict_x0(*call_args)
            timers.last_return = timers.now()
            return x0

        return timed

    class StageHook(originals["StepCacheStages"]):
        def __call__(self, stage: int) -> None:
            if stage > 0 and timers.last_return is not None:
                timers.transition += timers.now() - timers.last_return
            super().__call__(stage)

    class EdgeScorer(originals["EdgeSource"]):
        def __call__(self, *args):
            start = timers.now()
            try:
                return super().__call__(*args)
            finally:
                timers.edges += timers.now() - start

    glue.model_caller, glue.StepCacheStages, glue.EdgeSource = model_caller, StageHook, EdgeScorer
    try:
        yield
    finally:
        for name, original in originals.items():
            setattr(glue, name, original)


class ForwardCounter:
    """Counts the diffusion model's real forwards (what a step cache saves) at its final layer, which
    EasyCache and LazyCache skip too."""

    def __init__(self, diffusion_model) -> None:
        self.calls = 0
        self.handle = diffusion_model.final_layer.register_forward_pre_hook(self._count)

    def _count(self, *_) -> None:
        self.calls += 1

    def close(self) -> None:
        self.handle.remove()


def _proc_status_kb(field_name: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field_name + ":"):
            return int(line.split()[1])
    raise KeyError(field_name)


class PeakMemory:
    """Peak memory growth over a run: on a GPU torch.cuda.max_memory_allocated over what was allocated
    before; on the CPU the peak resident set (VmHWM, reset through /proc/self/clear_refs) over the
    resident set before, after glibc has handed freed memory back (malloc_trim)."""

    def __init__(self, cuda: bool) -> None:
        self.cuda = cuda
        libc_name = ctypes.util.find_library("c")
        self.libc = ctypes.CDLL(libc_name) if libc_name else None
        self.resettable = cuda or self._reset_hwm()
        self.method = (
            "torch.cuda.max_memory_allocated"
            if cuda
            else "peak RSS (VmHWM after /proc/self/clear_refs 5) minus RSS before"
            if self.resettable
            else "peak RSS growth (ru_maxrss: only growth above the process's earlier peak)"
        )

    @staticmethod
    def _reset_hwm() -> bool:
        try:
            Path("/proc/self/clear_refs").write_text("5")
            return True
        except OSError:
            return False

    def start(self) -> None:
        import torch

        gc.collect()
        if self.cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self.base = torch.cuda.memory_allocated()
            return
        if self.libc is not None and hasattr(self.libc, "malloc_trim"):
            self.libc.malloc_trim(0)
        if self.resettable:
            self._reset_hwm()
            self.base = _proc_status_kb("VmRSS") * 1024
        else:
            import resource

            self.base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

    def growth(self) -> int:
        import torch

        if self.cuda:
            torch.cuda.synchronize()
            return torch.cuda.max_memory_allocated() - self.base
        if self.resettable:
            return _proc_status_kb("VmHWM") * 1024 - self.base
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - self.base


def flop_counter():
    """torch's FlopCounterMode, also counting the CPU's fused attention (torch counts the GPU's)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode, sdpa_flop

    custom = {}
    cpu_sdpa = getattr(torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu", None)
    if cpu_sdpa is not None:
        custom[cpu_sdpa] = sdpa_flop
    return FlopCounterMode(display=False, custom_mapping=custom)


@dataclass
class RowRun:
    seconds: float
    cpu_seconds: float
    calls: list[int]  # the sampler's model calls (per stage for RALU)
    tokens: list[int]  # image tokens of each stage's calls (one entry for the plain sampler)
    forwards: int  # the model's real forwards (fewer where a step cache answered)
    steps_skipped: list[int] | None
    transition_seconds: float | None
    edge_seconds: float | None
    peak_bytes: int
    flops: float | None = None
    flops_by_op: dict[str, float] | None = None


@dataclass
class Bench:
    """One model, one seed, one size; runs any Row through ComfyUI's own sampling."""

    pack: object
    model: object  # ComfyUI ModelPatcher
    vae: object
    positive: list
    negative: list
    size: int
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
                model, noise, row.steps, 1.0, "euler", "simple", self.positive, self.negative, self.latent,
                callback=callback, disable_pbar=True, seed=self.seed,
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
            1.0,
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


# --- the FLOP model -----------------------------------------------------------------------------------


def modelled_speedup(cost: StepCost, row: Row, run: RowRun, presets: dict, size: int) -> float:
    """ralu/cost.py's speed-up over the baseline for what the row ran: the plan's steps at its stage
    token counts (less the steps a cache answered) plus the edge decode, or the plain sampler's forwards."""
    if row.edges != "vae":  # no decode: edges from the latent
        cost = dataclasses.replace(cost, vae_decode_flops_per_pixel=0.0)
    full_step = cost.step_flops((size // PIXELS_PER_TOKEN_SIDE) ** 2)
    baseline = BASELINE_STEPS * full_step
    if row.preset is None:
        return baseline / (run.forwards * full_step)
    estimate = estimate_speedup_for(cost, presets[row.preset], size, size, BASELINE_STEPS)
    skipped = run.steps_skipped or (0, 0, 0)
    saved = sum(n * cost.step_flops(tokens) for n, tokens in zip(skipped, estimate.tokens))
    return estimate.baseline_flops / (estimate.ralu_flops - saved)


# --- setup --------------------------------------------------------------------------------------------


def fill_random_(module, seed: int) -> None:
    """Seeded random weights in place on the module's device, by tests/models/builders.py's rule
    (std 1/sqrt(fan_in) for matrices, 1 for norm gains, 0 for biases)."""
    import torch

    with torch.no_grad():
        for key, tensor in sorted(module.state_dict(keep_vars=True).items()):
            gen = torch.Generator(tensor.device).manual_seed(zlib.crc32(f"{seed}:{key}".encode()))
            if tensor.ndim <= 1:
                tensor.fill_(0.0 if key.endswith("bias") else 1.0)
            else:
                tensor.normal_(0.0, 1.0 / math.sqrt(math.prod(tensor.shape[1:])), generator=gen)


def build_flux_dev_dims(device, dtype):
    """A ModelPatcher of FLUX.1-dev's dimensions with random weights, built on `device` from ComfyUI's
    classes (the test FLUX's config with FLUX.1-dev's depth)."""
    import comfy.model_management as mm
    import comfy.model_patcher
    import comfy.supported_models

    from tests.models.builders import FLUX_DEV_CONFIG

    model_config = comfy.supported_models.Flux({**FLUX_DEV_CONFIG, **FLUX_DEV_DEPTH})
    model_config.set_inference_dtype(dtype, None)
    model = model_config.get_model({}, device=device)
    fill_random_(model.diffusion_model, SEED)
    return comfy.model_patcher.ModelPatcher(
        model, load_device=device, offload_device=mm.unet_offload_device()
    )


def conditioning(seed: int, tokens: int) -> list:
    """Random CONDITIONING of FLUX's shapes (T5 context, CLIP-L pooled, guidance), from the test node."""
    from tests.comfy_test_nodes import RALUTestConditioning

    return RALUTestConditioning().make(seed, tokens, "flux", GUIDANCE, 1.0)[0]


@dataclass
class Options:
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
        description="Time RALU against the plain sampler on FLUX, in-process through ComfyUI's classes; "
        "prints a Markdown table and writes it with a JSON file to --output."
    )
    parser.add_argument("--gpu", action="store_true", help="FLUX.1-dev's dimensions at 1024x1024, bf16, CUDA")
    parser.add_argument(
        "--model", type=Path, help="a real FLUX diffusion model file instead of random weights"
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
        help=f"text tokens of the random prompt (default {DEFAULT_TEXT_TOKENS}; {GPU_TEXT_TOKENS} with --gpu "
        "or --model)",
    )
    parser.add_argument(
        "--rows", help="comma-separated row keys (the baseline 'plain' always runs); see --list"
    )
    parser.add_argument("--list", action="store_true", help="list the row keys and exit")
    default_models = os.environ.get("RALU_TEST_MODELS_DIR") or str(test_models.DEFAULT_DIR)
    parser.add_argument(
        "--models-dir", type=Path, default=Path(default_models), help="the test models (taef1)"
    )
    parser.add_argument(
        "--output", type=Path, default=REPO_ROOT / "bench_output", help="folder for the results"
    )
    opts = parser.parse_args(argv)
    if opts.list:
        from ralu.plan import PRESETS

        for row in default_rows(PRESETS):
            print(f"{row.key:20} {row.label}")
        raise SystemExit(0)
    size = opts.size or (GPU_SIZE if opts.gpu else DEFAULT_SIZE)
    if size % 32 or size < 128:
        parser.error("--size must be a multiple of 32, at least 128")
    repeats = opts.repeats if opts.repeats is not None else GPU_REPEATS if opts.gpu else DEFAULT_REPEATS
    if repeats < 1:
        parser.error("--repeats must be at least 1")
    tokens = opts.text_tokens or (GPU_TEXT_TOKENS if opts.gpu or opts.model else DEFAULT_TEXT_TOKENS)
    rows = None if opts.rows is None else [r.strip() for r in opts.rows.split(",") if r.strip()]
    if rows is not None:
        from ralu.plan import PRESETS

        unknown = set(rows) - {row.key for row in default_rows(PRESETS)}
        if unknown:
            parser.error(f"unknown --rows {', '.join(sorted(unknown))}; --list shows them")
    return Options(opts.gpu, opts.model, size, repeats, tokens, rows, opts.models_dir.resolve(), opts.output)


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
    if opts.model is not None:
        model = comfy.sd.load_diffusion_model(str(opts.model))
        origin = f"{opts.model.name} (real weights, loaded by comfy.sd.load_diffusion_model)"
    elif opts.gpu:
        model = build_flux_dev_dims(device, torch.bfloat16)
        origin = "FLUX.1-dev's dimensions with random weights, built here from ComfyUI's classes"
    else:
        path = opts.models_dir / "diffusion_models" / test_models.FLUX_DEV
        if not path.is_file():
            raise SystemExit(f"bench: no test model at {path}; run `make models` first")
        model = comfy.sd.load_diffusion_model(str(path))
        origin = f"{path.name}, the random-weight test FLUX (loaded by comfy.sd.load_diffusion_model)"
    diffusion_model = model.get_model_object("diffusion_model")
    shapes = {k: tuple(v.shape) for k, v in diffusion_model.state_dict().items()}
    try:
        cost, dims = model_cost(shapes, "flux", opts.text_tokens)
    except ValueError as err:
        raise SystemExit(
            f"bench: the model is not a FLUX diffusion model ({err}); the bench runs FLUX"
        ) from err
    dtype = str(model.model.get_dtype()).replace("torch.", "")
    what = f"{origin}: {dims}; {dtype} on {device}"
    bench = Bench(
        pack,
        model,
        load_taef1(opts.models_dir),
        conditioning(1, opts.text_tokens),
        conditioning(2, opts.text_tokens),
        opts.size,
        cuda=device.type == "cuda",
    )
    return bench, cost, what


# --- the table ----------------------------------------------------------------------------------------


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def summarise(bench: Bench, rows: list[Row], flops: dict, timed: dict, run_cost: StepCost) -> list[dict]:
    """Each row's medians and model figures; the counts (calls, skips, FLOPs) are the FLOP run's, and a
    step cache's skips in the timed runs are kept beside them (a cache decides on the values)."""
    base = rows[0]
    base_seconds = median([r.seconds for r in timed[base.key]])
    base_cpu = median([r.cpu_seconds for r in timed[base.key]])
    base_flops = flops[base.key].flops
    out = []
    for row in rows:
        runs, first = timed[row.key], flops[row.key]
        seconds = median([r.seconds for r in runs])
        measured = base_seconds / seconds
        model_run = modelled_speedup(run_cost, row, first, bench.presets, bench.size)
        flux_dev = modelled_speedup(FAMILY_COST["flux"], row, first, bench.presets, bench.size)
        ralu = row.preset is not None
        out.append(
            {
                "key": row.key,
                "label": row.label,
                "calls": first.calls,
                "tokens": first.tokens,
                "forwards": first.forwards,
                "steps_skipped": first.steps_skipped,
                "steps_skipped_timed": [r.steps_skipped for r in runs],
                "seconds": seconds,
                "seconds_each": [r.seconds for r in runs],
                "cpu_seconds": median([r.cpu_seconds for r in runs]),
                "speedup": measured,
                "cpu_speedup": base_cpu / median([r.cpu_seconds for r in runs]),
                "flop_model_run": model_run,
                "measured_over_flop_model": measured / model_run,
                "flop_model_flux_dev": flux_dev,
                "flops_counted": first.flops,
                "flops_counted_speedup": base_flops / first.flops,
                "flops_by_op": first.flops_by_op,
                "transition_seconds": median([r.transition_seconds for r in runs]) if ralu else None,
                "transition_share": median([r.transition_seconds / r.seconds for r in runs])
                if ralu
                else None,
                "edge_share": median([r.edge_seconds / r.seconds for r in runs]) if ralu else None,
                "peak_bytes": max(r.peak_bytes for r in runs),
                "peak_bytes_each": [r.peak_bytes for r in runs],
            }
        )
    return out


def latent_edges_overlap(early_masks: dict) -> tuple[int, int] | None:
    """(cells both edge sources upsampled early, cells the VAE path upsampled early) for flux_4x, from the
    early_mask outputs (1 on each chosen 32x32-pixel cell); None unless both rows ran."""
    if "flux_4x" not in early_masks or LATENT_EDGES_ROW not in early_masks:
        return None
    vae, latent = (early_masks[key][..., ::32, ::32] > 0.5 for key in ("flux_4x", LATENT_EDGES_ROW))
    return int((vae & latent).sum()), int(vae.sum())


def fit_step_time(results: list[dict], text_tokens: int) -> tuple[float, float] | None:
    """Seconds per model call that do not depend on the tokens, and seconds per token, fitted (least
    squares) to the rows without a cache: wall time less the transitions = calls x fixed + token-calls
    x per-token. None when the rows cannot tell the two apart, or the noise gives a negative term."""
    import numpy as np

    fitted = [r for r in results if r["steps_skipped"] is None]
    calls = [sum(r["calls"]) for r in fitted]
    token_calls = [sum(n * (t + text_tokens) for n, t in zip(r["calls"], r["tokens"])) for r in fitted]
    seconds = [r["seconds"] - (r["transition_seconds"] or 0.0) for r in fitted]
    design = np.array([calls, token_calls], dtype=float).T
    if len(fitted) < 3 or np.linalg.matrix_rank(design) < 2:
        return None
    (fixed, per_token), *_ = np.linalg.lstsq(design, np.array(seconds), rcond=None)
    return (float(fixed), float(per_token)) if fixed > 0 and per_token > 0 else None


def render(results: list[dict], header: list[str], notes: list[str], cuda: bool) -> str:
    cols = ["row", "model calls", "wall time (median)", "speed-up"]
    cols += [] if cuda else ["CPU-time speed-up"]
    cols += [
        "FLOP model, model run",
        "measured / FLOP model",
        "FLOP model, FLUX.1-dev",
        "FLOPs counted (speed-up)",
        "steps skipped",
        "transition (edges)",
        "peak memory",
    ]
    table = []
    for r in results:
        calls = str(sum(r["calls"])) + (f" ({'+'.join(map(str, r['calls']))})" if len(r["calls"]) > 1 else "")
        if r["forwards"] != sum(r["calls"]):
            calls += f", {r['forwards']} run"
        skipped = "-" if r["steps_skipped"] is None else "+".join(map(str, r["steps_skipped"]))
        timed_skips = {"+".join(map(str, t)) for t in r["steps_skipped_timed"] if t is not None}
        if timed_skips - {skipped}:
            skipped += f" (timed: {', '.join(sorted(timed_skips))})"
        transition = "-"
        if r["transition_share"] is not None:
            transition = f"{100 * r['transition_share']:.2f}% ({100 * r['edge_share']:.2f}%)"
        cells = [r["label"], calls, f"{r['seconds']:.1f} s", f"{r['speedup']:.2f}x"]
        cells += [] if cuda else [f"{r['cpu_speedup']:.2f}x"]
        cells += [
            f"{r['flop_model_run']:.2f}x",
            f"{r['measured_over_flop_model']:.2f}",
            f"{r['flop_model_flux_dev']:.2f}x",
            f"{r['flops_counted'] / 1e12:.2f} T ({r['flops_counted_speedup']:.2f}x)",
            skipped,
            transition,
            f"{r['peak_bytes'] / 2**20:+.0f} MiB",
        ]
        table.append(cells)
    widths = [max(len(c), *(len(t[i]) for t in table)) for i, c in enumerate(cols)]

    def line(cells):
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths)) + " |"

    lines = [*header, "", line(cols), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    return "\n".join([*lines, *(line(t) for t in table), "", *notes])


def main(argv: list[str] | None = None) -> int:
    opts = parse_args(argv)
    started = time.monotonic()
    load_before = os.getloadavg()
    bench, run_cost, what = setup(opts)
    rows = default_rows(bench.presets)
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
        f"cfg 1 (FLUX guidance {GUIDANCE}), euler / simple; {what}. RALU's edge source: a taef1 VAE "
        "(random weights).",
        f"{opts.repeats} timed round(s), the rows interleaved (A B C A B C ...), each row's median; before "
        "them one untimed run of each row under FlopCounterMode (also the warm-up).",
        "The weights are random: the pictures are noise, and nothing here says anything about quality.",
    ]
    if not bench.cuda:
        header.append(
            f"CPU defaults: {DEFAULT_SIZE}x{DEFAULT_SIZE}, {DEFAULT_TEXT_TOKENS} text tokens, "
            f"{DEFAULT_REPEATS} timed round, so that the whole default table takes about 7.5 minutes on 2 "
            "quiet cores (the FLOP-counting round is a second round); `--repeats 3` gives medians in about "
            "14 minutes; `--size`, `--text-tokens`, `--rows` change the rest."
        )
    notes = [
        "Speed-up: the baseline's median wall time over the row's. CPU-time speed-up: the same with the "
        "process's CPU time, which other work on a shared machine disturbs less.",
        "FLOP model: ralu/cost.py's formula (a (L+T) + b (L+T)^2 per step, plus RALU's edge decode) for what "
        f"the row ran (a cache's skipped steps left out) against {BASELINE_STEPS} plain steps. 'Model run': "
        "with the constants of the model that ran (scripts/model_cost.py: its parameters, width and blocks, "
        f"the text tokens above, the TAESD decode at {TAESD_DECODE_FLOPS_PER_PIXEL / 1e6:.2f}e6 FLOPs per "
        "pixel); 'FLUX.1-dev': FLUX.1-dev's (512 T5 tokens, the KL decoder) at the same size.",
        "FLOPs counted: torch.utils.flop_counter.FlopCounterMode over one whole run of the row (matrix "
        "products, attention, the edge decode's convolutions); in brackets the baseline's count over the "
        "row's.",
        "Transition: the time from a stage's last model call to the next stage's start (edge scoring, token "
        "selection, re-noise, layout change) over the row's wall time, median of the rounds; in brackets the "
        "edge scoring (VAE decode + Canny) alone. Timed by wrapping comfy_glue's predict_x0, step-cache "
        "stage hook and edge scorer in the bench.",
        f"Peak memory: {bench.memory.method}, the largest of the rounds.",
    ]
    overlap = latent_edges_overlap(bench.early_masks)
    if overlap is not None:
        shared, chosen = overlap
        notes.append(
            f"Latent-gradient edges: of the {chosen} low-res cells RALU flux_4x upsampled early from the "
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
    text = render(results, header, notes, bench.cuda)
    print("\n" + text)
    opts.output.mkdir(parents=True, exist_ok=True)
    (opts.output / "bench.md").write_text(text + "\n")
    config = {
        "mode": mode,
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
