"""In-process tests: ComfyUI's own classes, imported from the host tree, on tiny models built here."""

import importlib.util
import sys

import pytest

from tests.comfy_path import REPO_ROOT

PACK_NAME = "comfyui_ralu_under_test"


@pytest.fixture(scope="session")
def pack(comfy_inprocess):
    """The pack imported the way ComfyUI does: as a package named after its folder."""
    if PACK_NAME not in sys.modules:
        spec = importlib.util.spec_from_file_location(
            PACK_NAME, REPO_ROOT / "__init__.py", submodule_search_locations=[str(REPO_ROOT)]
        )
        module = importlib.util.module_from_spec(spec)
        sys.modules[PACK_NAME] = module
        spec.loader.exec_module(module)
    return sys.modules[PACK_NAME]


@pytest.fixture(scope="session")
def tiny_flux(comfy_inprocess):
    from tiny_models import build_tiny_flux

    return build_tiny_flux()


@pytest.fixture(scope="session")
def tiny_sd3(comfy_inprocess):
    from tiny_models import build_tiny_sd3

    return build_tiny_sd3()
