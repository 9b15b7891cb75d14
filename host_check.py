"""The ComfyUI internals the pack calls, checked before a run samples anything.

comfy_glue.py, input_checks.py and families/ use functions and methods that ComfyUI does not promise
to keep. On a ComfyUI where one is missing or takes other parameters, RALU KSampler refuses with a
message naming it and the ComfyUI versions the pack is tested with, before the first model call,
instead of failing with a traceback in the middle of a run.
"""

from __future__ import annotations

import importlib
import inspect
from dataclasses import dataclass

TESTED_WITH = ("0.3.75", "0.33.0")

_POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)


@dataclass(frozen=True)
class Internal:
    """A ComfyUI function, class or method (`module`, then a dotted `name`) and how the pack uses it.

    `positional`: the names of the leading parameters, in order, that the pack passes by position (or,
    when `called` is False, that ComfyUI passes to the pack's patch under those names); `keywords`: the
    parameters it passes by name. A class is checked through its constructor; `positional` None checks
    only that the name exists (a constant).
    """

    module: str
    name: str
    positional: tuple[str, ...] | None = ()
    keywords: tuple[str, ...] = ()
    called: bool = True  # the pack calls it with exactly these arguments

    @property
    def label(self) -> str:
        return f"{self.module}.{self.name}"

    def usage(self) -> str:
        if self.positional is None:
            return self.label
        return f"{self.label}({', '.join((*self.positional, *(f'{k}=' for k in self.keywords)))})"

    def problem(self) -> str | None:
        """Why this ComfyUI does not have the internal as the pack uses it, or None when it does."""
        try:
            target = importlib.import_module(self.module)
            for part in self.name.split("."):
                target = getattr(target, part)
        except (ImportError, AttributeError):
            return "does not exist"
        if self.positional is None:
            return None
        try:
            signature = inspect.signature(target)
        except (TypeError, ValueError):
            return "has no signature the pack can read"
        parameters = list(signature.parameters.values())
        if not inspect.isclass(target) and "." in self.name and parameters and parameters[0].name == "self":
            parameters = parameters[1:]  # a method looked up on its class
        names = [p.name for p in parameters if p.kind in _POSITIONAL][: len(self.positional)]
        if tuple(names) != self.positional:
            return f"takes {signature} here"
        if not self.called:
            return None
        try:
            inspect.Signature(parameters).bind(*self.positional, **dict.fromkeys(self.keywords))
        except TypeError:
            return f"takes {signature} here"
        return None


# What comfy_glue.py and input_checks.py use for every family; each family adds its own
# (ModelFamily.internals).
INTERNALS = (
    Internal("comfy.sample", "prepare_noise", ("latent_image", "seed", "noise_inds")),
    Internal("comfy.sample", "fix_empty_latent_channels", ("model", "latent_image")),
    Internal(
        "comfy.sample",
        "sample_custom",
        ("model", "noise", "cfg", "sampler", "sigmas", "positive", "negative", "latent_image"),
        ("disable_pbar", "seed"),
    ),
    Internal("comfy.samplers", "KSAMPLER", ("sampler_function",), ("extra_options",)),
    Internal("comfy.model_patcher", "ModelPatcher.clone"),
    Internal("comfy.model_patcher", "ModelPatcher.add_wrapper_with_key", ("wrapper_type", "key", "wrapper")),
    Internal("comfy.patcher_extension", "WrappersMP.CALC_COND_BATCH", None),
    Internal("comfy.model_management", "loaded_models", (), ("only_currently_used",)),
    Internal("comfy.model_management", "load_models_gpu", ("models",)),
    Internal("comfy.model_management", "throw_exception_if_processing_interrupted"),
    Internal("comfy.utils", "ProgressBar", ("total",)),
    Internal("comfy.utils", "ProgressBar.update_absolute", ("value", "total", "preview")),
    Internal("latent_preview", "get_previewer", ("device", "latent_format")),
    Internal("comfy_execution.utils", "get_executing_context", ()),
)


def comfyui_version() -> str:
    try:
        return importlib.import_module("comfyui_version").__version__
    except (ImportError, AttributeError):
        return "version unknown"


def unsupported(internals) -> str | None:
    """What to tell a person about the first internal this ComfyUI lacks or has changed, or None."""
    for internal in internals:
        problem = internal.problem()
        if problem is not None:
            return (
                f"RALU KSampler cannot run on this ComfyUI ({comfyui_version()}): it uses "
                f"{internal.usage()}, which {problem}. ComfyUI-RALU is tested with ComfyUI "
                f"{' and '.join(TESTED_WITH)}: use one of those, or update ComfyUI-RALU."
            )
    return None
