"""Random-weight test models in ComfyUI's formats: `python -m tests.models [--dir DIR]` builds them.

See tests/models/builders.py. Nothing here is shipped or committed; the files live (cached) under
.comfy/test-models/ in ComfyUI's folder layout.
"""

from tests.models.builders import (
    BUILD_VERSION,
    CLIP_L,
    DEFAULT_DIR,
    FLUX_DEV,
    FLUX_SCHNELL,
    FOLDERS,
    MODELS,
    SD3,
    SD3_LAYOUTS,
    SD35_LARGE,
    SD35_MEDIUM,
    TAE_CHANNELS,
    TAEF1,
    TAESD,
    TAESD3,
    all_current,
    build_all,
    extra_model_paths_yaml,
    is_current,
    write_extra_model_paths,
)

__all__ = [
    "BUILD_VERSION",
    "CLIP_L",
    "DEFAULT_DIR",
    "FLUX_DEV",
    "FLUX_SCHNELL",
    "FOLDERS",
    "MODELS",
    "SD3",
    "SD3_LAYOUTS",
    "SD35_LARGE",
    "SD35_MEDIUM",
    "TAEF1",
    "TAE_CHANNELS",
    "TAESD",
    "TAESD3",
    "all_current",
    "build_all",
    "extra_model_paths_yaml",
    "is_current",
    "write_extra_model_paths",
]
