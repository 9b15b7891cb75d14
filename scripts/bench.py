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

    python scripts/bench.py [--family flux|sd3] [--size 512] [--repeats 1] [--rows plain,flux_4x,...]
                            [--text-tokens 77] [--gpu] [--model PATH] [--output bench_output]
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

from ralu.cost import (  # noqa: E402
    COST_MODELS,
    PIXELS_PER_TOKEN_SIDE,
    StepCost,
    estimate_speedup_for,
)
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
FLUX_DEV_DEPTH = {"depth": 19, "depth_single_blocks": 38}
# SD3 Medium as ComfyUI's loader detects it (MMDiT's width is 64 x depth; num_blocks, when given, builds
# fewer blocks of that width).
SD3_MEDIUM_CONFIG = {
    "in_channels": 16,
    "out_channels": 16,
    "patch_size": 2,
    "depth": 24,
    "adm_in_channels": 2048,
    "context_embedder_config": {
        "target": "torch.nn.Linear",
        "params": {"in_features": 4096, "out_features": 1536},
    },
    "pos_embed_max_size": 192,
    "num_patches": 192**2,
    "pos_embed_scaling_factor": None,
}
# SD3 Medium's width with one joint block (74M parameters): the default SD3 table, whose 28-step rows
# are shorter than FLUX's 50, takes about 4 minutes on 2 quiet cores.
CPU_SD3_BLOCKS = 1
CACHES = ("easycache", "lazycache")


@dataclass(frozen=True)
class Family:
    """What the bench runs for one model family, as the shipped workflows' comparison KSampler does."""

    # The plans' family (their `model` for the base model's presets) and the key of the base model's
    # cost model (FLUX.1-dev, SD3 Medium): its name, step count and text tokens are the bench's.
    name: str
    cfg: float
    scheduler: str
    vae: str  # the test models' TAESD for the edge decode (vae_approx/)
    cpu_minutes: float  # what the default CPU table took on 2 quiet cores

    @property
    def real_model(self) -> str:
        """Whose dimensions --gpu builds and the last FLOP column uses."""
        return COST_MODELS[self.name].label

    @property
    def baseline_steps(self) -> int:
        return COST_MODELS[self.name].baseline_steps  # FLUX.1-dev's 50, SD3 Medium's 28

    @property
    def gpu_text_tokens(self) -> int:
        return COST_MODELS[self.name].step.text_tokens  # FLUX.1-dev's 512 T5 tokens, SD3's 77 + 256


FAMILIES = {
    "flux": Family("flux", 1.0, "simple", "taef1", 7.5),
    "sd3": Family("sd3", 4.5, "sgm_uniform", "taesd3", 4),
}


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
        return self.key == "plain"


def family_presets(presets: dict, family: Family) -> list:
    """The presets of the family's base model (FLUX.1-dev, SD3 Medium) in `presets` (ralu.plan.PRESETS;
    flux_schnell and sd35_turbo are for other models, which refuse them or take other step counts)."""
    return [plan for plan in presets.values() if plan.model == family.name]


def lead_preset(presets: dict, family: Family) -> str:
    """The preset that the latent-edges and step-cache rows run (flux_4x, sd3_2x)."""
    return family_presets(presets, family)[0].name


def latent_edges_key(presets: dict, family: Family) -> str:
    """The row of the lead preset with its edges from a gradient kernel on the stage-1 latent (no decode),
    whose selection is compared with the same preset's VAE path."""
    return f"{lead_preset(presets, family)}+latent"


def default_rows(presets: dict, family: Family) -> list[Row]:
    """The table's rows, baseline first."""
    plans = family_presets(presets, family)
    lead, baseline_steps = lead_preset(presets, family), family.baseline_steps
    rows = [Row("plain", f"plain sampler, {baseline_steps} steps", steps=baseline_steps)]
    for steps in dict.fromkeys(plan.total_steps for plan in plans):
        names = ", ".join(p.name for p in plans if p.total_steps == steps)
        rows.append(Row(f"naive{steps}", f"plain sampler, {steps} steps (as {names})", steps=steps))
    rows += [Row(plan.name, f"RALU {plan.name}", preset=plan.name) for plan in plans]
    latent_label = f"RALU {lead}, latent-gradient edges"
    rows.append(Row(latent_edges_key(presets, family), latent_label, preset=lead, edges="latent gradient"))
    label = {"easycache": "EasyCache", "lazycache": "LazyCache"}
    rows += [Row(f"{lead}+{c}", f"RALU {lead} + {label[c]}", preset=lead, cache=c) for c in CACHES]
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


def load_taesd(models_dir: Path, name: str):
    """A TAESD VAE (taef1, taesd3) from `models_dir`/vae_approx, loaded by ComfyUI's VAELoader."""
    import folder_paths
    import nodes

    folder_paths.add_model_folder_path("vae_approx", str(models_dir / "vae_approx"))
    return nodes.VAELoader().load_vae(name)[0]


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


# --- the FLOP model -----------------------------------------------------------------------------------


def modelled_speedup(
    cost: StepCost, row: Row, run: RowRun, presets: dict, size: int, baseline_steps: int
) -> float:
    """ralu/cost.py's speed-up over the baseline for what the row ran: the plan's steps at its stage
    token counts (less the steps a cache answered) plus the edge decode, or the plain sampler's forwards."""
    if row.edges != "vae":  # no decode: edges from the latent
        cost = dataclasses.replace(cost, vae_decode_flops_per_pixel=0.0)
    full_step = cost.step_flops((size // PIXELS_PER_TOKEN_SIDE) ** 2)
    baseline = baseline_steps * full_step
    if row.preset is None:
        return baseline / (run.forwards * full_step)
    estimate = estimate_speedup_for(cost, presets[row.preset], size, size, baseline_steps)
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


def real_dims_config(family: Family, sd3_blocks: int | None = None):
    """ComfyUI's model config (comfy.supported_models) of FLUX.1-dev's dimensions (the test FLUX's config
    with FLUX.1-dev's depth) or SD3 Medium's, with only `sd3_blocks` of its joint blocks when given."""
    import comfy.supported_models

    from tests.models.builders import FLUX_DEV_CONFIG, flux1_config

    if family.name == "flux":
        return comfy.supported_models.Flux(flux1_config({**FLUX_DEV_CONFIG, **FLUX_DEV_DEPTH}))
    config = dict(SD3_MEDIUM_CONFIG)
    if sd3_blocks is not None:
        config["num_blocks"] = sd3_blocks
    return comfy.supported_models.SD3(config)


def build_real_dims(family: Family, device, dtype, sd3_blocks: int | None = None):
    """A ModelPatcher of real_dims_config's model with random weights, built on `device`. SD3's position
    table is the real checkpoints' sin-cos one, which RALU's SD3 positions read."""
    import comfy.model_management as mm
    import comfy.model_patcher
    import torch

    from tests.models.builders import sd3_position_table

    model_config = real_dims_config(family, sd3_blocks)
    model_config.set_inference_dtype(dtype, None)
    model = model_config.get_model({}, device=device)
    fill_random_(model.diffusion_model, SEED)
    if family.name == "sd3":
        diffusion_model = model.diffusion_model
        table = sd3_position_table(diffusion_model.hidden_size, SD3_MEDIUM_CONFIG["pos_embed_max_size"])
        with torch.no_grad():
            diffusion_model.pos_embed.copy_(table)
    return comfy.model_patcher.ModelPatcher(
        model, load_device=device, offload_device=mm.unet_offload_device()
    )


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
        model = build_real_dims(family, device, torch.bfloat16)
        origin = f"{family.real_model}'s dimensions with random weights, built here from ComfyUI's classes"
    elif family.name == "sd3":
        model = build_real_dims(family, device, torch.float32, sd3_blocks=CPU_SD3_BLOCKS)
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
        steps, real_cost = bench.family.baseline_steps, COST_MODELS[bench.family.name].step
        model_run = modelled_speedup(run_cost, row, first, bench.presets, bench.size, steps)
        real = modelled_speedup(real_cost, row, first, bench.presets, bench.size, steps)
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
                "flop_model_real": real,
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


def latent_edges_overlap(early_masks: dict, presets: dict, family: Family) -> tuple[int, int] | None:
    """(cells both edge sources upsampled early, cells the VAE path upsampled early) for the lead preset,
    from the early_mask outputs (1 on each chosen 32x32-pixel cell); None unless both rows ran."""
    keys = (lead_preset(presets, family), latent_edges_key(presets, family))
    if any(key not in early_masks for key in keys):
        return None
    vae, latent = (early_masks[key][..., ::32, ::32] > 0.5 for key in keys)
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


def render(results: list[dict], header: list[str], notes: list[str], cuda: bool, real_model: str) -> str:
    cols = ["row", "model calls", "wall time (median)", "speed-up"]
    cols += [] if cuda else ["CPU-time speed-up"]
    cols += [
        "FLOP model, model run",
        "measured / FLOP model",
        f"FLOP model, {real_model}",
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
            f"{r['flop_model_real']:.2f}x",
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
