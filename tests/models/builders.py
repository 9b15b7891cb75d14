"""Builders for random-weight test models in ComfyUI's own file formats.

Each model is built from the host's own classes under `torch.device("meta")` with
`comfy.ops.disable_weight_init`, so the key names and shapes are exactly those ComfyUI writes and
expects; only then are seeded random weights made (std 1/sqrt(fan_in) for matrices and
embeddings, 1 for norm gains, 0 for biases) and saved with safetensors. Files are written to a
temporary name and renamed, so an interrupted build leaves nothing that looks finished, and a
file whose metadata carries another version than its ModelFile's is rebuilt.

Call `tests.comfy_path.ensure()` before using anything here that touches ComfyUI.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import math
import os
import re
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.comfy_path import STATE_DIR

# Bump to rebuild every cached file; bump one ModelFile's `revision` to rebuild only that file (its
# version is then "BUILD_VERSION.revision"). A cached file with another version is rebuilt.
BUILD_VERSION = "1"
DEFAULT_DIR = STATE_DIR / "test-models"
FOLDERS = ("diffusion_models", "text_encoders", "vae", "vae_approx")

# Names as ComfyUI's loaders list them.
FLUX_DEV = "ralu_test_flux_dev.safetensors"  # UNETLoader / diffusion_models
FLUX_SCHNELL = "ralu_test_flux_schnell.safetensors"  # the same without guidance_in: FluxSchnell
SD3 = "ralu_test_sd3.safetensors"  # UNETLoader / diffusion_models: SD3 Medium's key layout
SD35_LARGE = "ralu_test_sd35_large.safetensors"  # SD3.5 Large's: qk-norm (ln_q / ln_k)
SD35_MEDIUM = "ralu_test_sd35_medium.safetensors"  # SD3.5 Medium's MMDiT-X: qk-norm + x_block.attn2
CLIP_L = "ralu_test_clip_l.safetensors"  # CLIPLoader / text_encoders (type "sd3")
TAEF1 = "taef1"  # VAELoader, from vae_approx/taef1_{encoder,decoder}.safetensors
TAESD3 = "taesd3"  # VAELoader, from vae_approx/taesd3_{encoder,decoder}.safetensors
TAESD = "taesd"  # VAELoader: SD1.5's 4-channel tiny VAE, a VAE of another latent format for the tests
# Latent channels of each tiny VAE.
TAE_CHANNELS = {TAEF1: 16, TAESD3: 16, TAESD: 4}

FLUX_DEV_CONFIG = dict(
    image_model="flux",
    in_channels=16,
    out_channels=16,
    vec_in_dim=768,
    context_in_dim=4096,
    hidden_size=3072,  # detection hard-codes 24 heads x 128
    mlp_ratio=4.0,
    num_heads=24,
    depth=1,
    depth_single_blocks=0,
    axes_dim=[16, 56, 56],
    theta=10000,
    patch_size=2,
    qkv_bias=True,
    guidance_embed=True,  # guidance_in present: detected as FLUX dev, not schnell
)
SD3_DEPTH = 2  # hidden 64 * depth = 128, heads = depth
SD3_POS_EMBED_MAX_SIZE = 64  # patches per side of SD3 Medium's layout: up to 1024 px images
SD3_ADM = 2048
SD3_CONTEXT = 4096


@dataclass(frozen=True)
class SD3Layout:
    """One SD3-family key layout, as ComfyUI's loader detects it (comfy/model_detection.py)."""

    filename: str
    label: str
    qk_norm: str | None  # "rms": ln_q / ln_k keys in every attention (SD3.5)
    x_block_self_attn_layers: tuple[int, ...]  # joint blocks with x_block.attn2 (SD3.5 Medium, MMDiT-X)
    # Table side P. Real checkpoints: 192 (SD3 Medium, SD3.5 Large), 384 (SD3.5 Medium); here P > 64
    # gives the table a non-zero origin ((P - 64) / 2 entries) as the real ones have.
    pos_embed_max_size: int

    @property
    def hidden(self) -> int:
        return 64 * SD3_DEPTH


SD3_LAYOUTS: tuple[SD3Layout, ...] = (
    SD3Layout(SD3, "SD3 Medium", None, (), SD3_POS_EMBED_MAX_SIZE),
    SD3Layout(SD35_LARGE, "SD3.5 Large", "rms", (), 80),
    SD3Layout(SD35_MEDIUM, "SD3.5 Medium", "rms", (0,), 96),
)


def sd3_position_table(hidden: int, size: int):
    """SD3's stored table as the real checkpoints have it: 2-D sin-cos at a quarter unit per entry,
    centred so that a 64 x 64 crop (a 1024 x 1024 image) starts at position 0. (1, P*P, hidden) fp32."""
    import comfy.ldm.modules.diffusionmodules.mmdit as mmdit
    import torch

    table = mmdit.get_2d_sincos_pos_embed(hidden, size, scaling_factor=4, offset=(size - 64) / 8)
    return torch.from_numpy(table).float().unsqueeze(0)


@dataclass(frozen=True)
class ModelFile:
    folder: str
    filename: str
    build: Callable[[], dict]
    what: str
    revision: int = 0  # bump when this builder changes what it writes

    @property
    def relpath(self) -> str:
        return f"{self.folder}/{self.filename}"

    @property
    def version(self) -> str:
        return f"{BUILD_VERSION}.{self.revision}" if self.revision else BUILD_VERSION


def _seed(name: str) -> int:
    return zlib.crc32(name.encode())


def random_weights(shapes: dict, name: str, dtype, fixed: dict | None = None) -> dict:
    """Seeded random tensors for the (meta) tensors in `shapes`; `fixed` supplies exact values."""
    import torch

    gen = torch.Generator().manual_seed(_seed(name))
    out = {}
    for key in sorted(shapes):
        shape = tuple(shapes[key].shape)
        if fixed and key in fixed:
            t = fixed[key]
        elif len(shape) <= 1:
            t = torch.zeros(shape) if key.endswith("bias") else torch.ones(shape)
        else:
            t = torch.randn(shape, generator=gen)
            t.mul_(1.0 / math.sqrt(math.prod(shape[1:])))
        out[key] = t.to(dtype).contiguous()
    return out


def _meta_state_dict(make: Callable):
    import torch

    with torch.device("meta"):
        return make().state_dict()


def flux_params() -> set[str]:
    """The fields of this ComfyUI's FluxParams: newer ones add some (txt_ids_dims, yak_mlp, txt_norm)."""
    import dataclasses

    import comfy.ldm.flux.model

    return {field.name for field in dataclasses.fields(comfy.ldm.flux.model.FluxParams)}


def flux1_config(config: dict) -> dict:
    """A FLUX.1 config for this ComfyUI: newer ones require `txt_ids_dims`, FLUX.1's being none (text ids
    all zero, as older ones always made them), so the model and its file are the same on both."""
    return {**config, "txt_ids_dims": []} if "txt_ids_dims" in flux_params() else dict(config)


def _flux_builder(filename: str, guidance_embed: bool) -> Callable[[], dict]:
    def build() -> dict:
        import comfy.ldm.flux.model
        import comfy.ops
        import torch

        config = flux1_config({**FLUX_DEV_CONFIG, "guidance_embed": guidance_embed})
        shapes = _meta_state_dict(
            lambda: comfy.ldm.flux.model.Flux(
                dtype=torch.bfloat16, device="meta", operations=comfy.ops.disable_weight_init, **config
            )
        )
        # The released FLUX.1 files name the q/k norms' gains `scale`, as ComfyUI's own modules did up
        # to 0.3.x; newer ones name them `weight` and rename the released keys on load. The file keeps
        # the released names, so it is the same whichever ComfyUI builds it.
        shapes = {re.sub(r"_norm\.weight$", "_norm.scale", key): shape for key, shape in shapes.items()}
        return random_weights(shapes, filename, torch.bfloat16)

    return build


def _sd3_builder(layout: SD3Layout) -> Callable[[], dict]:
    def build() -> dict:
        import comfy.ldm.modules.diffusionmodules.mmdit as mmdit
        import comfy.ops
        import torch

        size = layout.pos_embed_max_size
        shapes = _meta_state_dict(
            lambda: mmdit.OpenAISignatureMMDITWrapper(
                in_channels=16,
                out_channels=16,
                patch_size=2,
                depth=SD3_DEPTH,
                adm_in_channels=SD3_ADM,
                context_embedder_config={
                    "target": "torch.nn.Linear",
                    "params": {"in_features": SD3_CONTEXT, "out_features": layout.hidden},
                },
                num_patches=size**2,
                pos_embed_max_size=size,
                qk_norm=layout.qk_norm,
                x_block_self_attn_layers=list(layout.x_block_self_attn_layers),
                dtype=torch.float16,
                device="meta",
                operations=comfy.ops.disable_weight_init,
            )
        )
        # SD3 ships a fixed 2D sin-cos position table, not a learned one: write the real thing.
        fixed = {"pos_embed": sd3_position_table(layout.hidden, size)}
        return random_weights(shapes, layout.filename, torch.float16, fixed)

    return build


def build_clip_l() -> dict:
    import comfy.clip_model
    import comfy.ops
    import comfy.sd1_clip
    import torch

    config_path = Path(comfy.sd1_clip.__file__).with_name("sd1_clip_config.json")
    config = json.loads(config_path.read_text())
    shapes = _meta_state_dict(
        lambda: comfy.clip_model.CLIPTextModel(config, torch.float16, "meta", comfy.ops.disable_weight_init)
    )
    return random_weights(shapes, CLIP_L, torch.float16)


def _taesd_builder(name: str, part: str) -> Callable[[], dict]:
    def build() -> dict:
        import comfy.taesd.taesd as taesd
        import torch

        make = taesd.Encoder if part == "encoder" else taesd.Decoder
        shapes = _meta_state_dict(lambda: make(latent_channels=TAE_CHANNELS[name]))
        return random_weights(shapes, f"{name}_{part}", torch.float32)

    return build


MODELS: tuple[ModelFile, ...] = (
    *(
        ModelFile(
            "vae_approx", f"{tae}_{part}.safetensors", _taesd_builder(tae, part), f"random TAESD {part}"
        )
        for tae in TAE_CHANNELS
        for part in ("encoder", "decoder")
    ),
    *(
        ModelFile(
            "diffusion_models",
            layout.filename,
            _sd3_builder(layout),
            f"tiny {layout.label} layout (depth 2, hidden 128, {layout.pos_embed_max_size}^2 table), fp16",
            revision=1,  # 1: the real table layout (quarter-unit positions, origin (P - 64) / 2)
        )
        for layout in SD3_LAYOUTS
    ),
    ModelFile("text_encoders", CLIP_L, build_clip_l, "random CLIP-L (ComfyUI's config), fp16"),
    ModelFile(
        "diffusion_models", FLUX_DEV, _flux_builder(FLUX_DEV, True), "smallest detectable FLUX dev, bf16"
    ),
    ModelFile(
        "diffusion_models",
        FLUX_SCHNELL,
        _flux_builder(FLUX_SCHNELL, False),
        "the same without guidance_in: FLUX schnell, bf16",
    ),
)


def is_current(path: Path, version: str = BUILD_VERSION) -> bool:
    """The file exists, is a readable safetensors file and was written by builders of `version`
    (a ModelFile's `.version`)."""
    from safetensors import safe_open

    if not path.is_file():
        return False
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
    except Exception:
        return False
    return meta.get("ralu_test_model_version") == version


def _save_atomic(tensors: dict, path: Path, name: str, version: str) -> None:
    from safetensors.torch import save_file

    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        metadata = {"ralu_test_model": name, "ralu_test_model_version": version}
        save_file(tensors, str(tmp), metadata=metadata)
        os.chmod(tmp, 0o644)  # safetensors writes 0600
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def _build_lock(models_dir: Path) -> Iterator[None]:
    """One builder at a time per folder (e.g. `make models` and a test session started together)."""
    with open(models_dir / ".build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


@dataclass
class BuildResult:
    model: ModelFile
    path: Path
    built: bool
    seconds: float

    def line(self) -> str:
        size = self.path.stat().st_size / 1e6
        state = f"built in {self.seconds:5.1f} s" if self.built else "cached        "
        return f"{state}  {size:8.1f} MB  {self.model.relpath}  ({self.model.what})"


def build_all(models_dir: Path | str = DEFAULT_DIR, force: bool = False, log=None) -> list[BuildResult]:
    """Build every missing or outdated test model under `models_dir`; return what was done."""
    models_dir = Path(models_dir).resolve()
    for folder in FOLDERS:
        (models_dir / folder).mkdir(parents=True, exist_ok=True)
    results = []
    with _build_lock(models_dir):
        for stale in models_dir.glob("*/.*.tmp-*"):  # left by an interrupted build
            stale.unlink(missing_ok=True)
        for model in MODELS:
            path = models_dir / model.relpath
            start = time.perf_counter()
            built = force or not is_current(path, model.version)
            if built:
                _save_atomic(model.build(), path, model.filename, model.version)
            result = BuildResult(model, path, built, time.perf_counter() - start)
            results.append(result)
            if log:
                log(result.line())
        write_extra_model_paths(models_dir / "extra_model_paths.yaml", models_dir)
    return results


def all_current(models_dir: Path | str = DEFAULT_DIR) -> bool:
    models_dir = Path(models_dir)
    return all(is_current(models_dir / m.relpath, m.version) for m in MODELS)


def extra_model_paths_yaml(models_dir: Path | str) -> str:
    """An extra_model_paths.yaml (ComfyUI's format) that adds the test models' folders."""
    models_dir = Path(models_dir).resolve()
    lines = ["ralu_test_models:", f"    base_path: {json.dumps(str(models_dir))}"]
    lines += [f"    {folder}: {folder}" for folder in FOLDERS]
    return "\n".join(lines) + "\n"


def write_extra_model_paths(yaml_path: Path | str, models_dir: Path | str) -> Path:
    yaml_path = Path(yaml_path)
    text = extra_model_paths_yaml(models_dir)
    if not yaml_path.is_file() or yaml_path.read_text() != text:
        tmp = yaml_path.with_name(f".{yaml_path.name}.tmp-{os.getpid()}")
        tmp.write_text(text)
        os.replace(tmp, yaml_path)
    return yaml_path
