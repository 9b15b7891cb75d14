"""In-process tests: ComfyUI's own classes, imported from the host tree, on tiny models built here.

The `pack` fixture (the pack imported as ComfyUI imports it) is in tests/conftest.py.
"""

import pytest


@pytest.fixture(scope="session")
def tiny_flux(comfy_inprocess):
    from tiny_models import build_tiny_flux

    return build_tiny_flux()


@pytest.fixture(scope="session")
def tiny_sd3(comfy_inprocess):
    from tiny_models import build_tiny_sd3

    return build_tiny_sd3()
