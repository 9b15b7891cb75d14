"""How `make bench` measures a run besides its wall time: the transitions between RALU's stages, the
model's real forwards, peak memory and FLOPs."""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import gc
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path


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
