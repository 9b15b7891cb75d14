"""Shared fixtures.

- `comfy_host` (session): the REAL ComfyUI server (tests/host.py::ComfyHost) with this pack and the
  test-only nodes (tests/comfy_test_nodes) in its custom_nodes and the test models visible. Tests
  that use it are marked `server` automatically (`-m "not server"` skips them).
- `fresh_host` (module): a second real ComfyUI server that runs only stock prompts, the reference
  for "RALU left the shared model as it found it"; stopped at the end of the module.
- `test_models` (session): names of the random-weight test models (built on first use if missing).
- `comfy_inprocess` (session): ComfyUI importable in this process, on the CPU; returns the host.
- `pack` (session): this pack imported in this process the way ComfyUI imports it.

Without a host (`make setup` not run) these fixtures skip, unless RALU_REQUIRE_HOST=1 (set by
`make test` and CI) turns the skip into a failure.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests import comfy_path

REQUIRE_HOST = os.environ.get("RALU_REQUIRE_HOST", "") not in ("", "0")


def _host_or_skip() -> comfy_path.Host:
    try:
        return comfy_path.ensure()
    except comfy_path.HostNotFound as err:
        if REQUIRE_HOST:
            pytest.fail(f"RALU_REQUIRE_HOST is set but {err}", pytrace=False)
        pytest.skip(str(err))


@dataclass(frozen=True)
class TestModels:
    """What ComfyUI's loaders call the test models (see tests/models/builders.py)."""

    dir: Path
    flux_dev: str  # UNETLoader unet_name
    flux_schnell: str  # UNETLoader unet_name: the same without guidance_in (FluxSchnell)
    sd3: str  # UNETLoader unet_name: SD3 Medium's key layout
    sd35_large: str  # SD3.5 Large's (qk-norm)
    sd35_medium: str  # SD3.5 Medium's (MMDiT-X: qk-norm and x_block self-attention)
    clip_l: str  # CLIPLoader clip_name, type "sd3"
    taef1: str  # VAELoader vae_name
    taesd3: str  # VAELoader vae_name
    taesd: str  # VAELoader vae_name: SD1.5's 4-channel format

    __test__ = False  # not a test class

    def path(self, folder: str, filename: str) -> Path:
        return self.dir / folder / filename


@pytest.fixture(scope="session")
def comfy_inprocess() -> comfy_path.Host:
    """ComfyUI importable here (host dir first on sys.path, CPU only); its `nodes` is pinned."""
    host = _host_or_skip()
    import nodes  # ComfyUI's nodes.py, not this repository's nodes/ package

    if Path(nodes.__file__).resolve().parent != host.comfy_dir.resolve():
        pytest.fail(f"`import nodes` found {nodes.__file__}, not ComfyUI's nodes.py", pytrace=False)
    return host


PACK_NAME = "comfyui_ralu_under_test"


@pytest.fixture(scope="session")
def pack(comfy_inprocess):
    """The pack imported the way ComfyUI does: as a package named after its folder."""
    if PACK_NAME not in sys.modules:
        root = comfy_path.REPO_ROOT
        spec = importlib.util.spec_from_file_location(
            PACK_NAME, root / "__init__.py", submodule_search_locations=[str(root)]
        )
        module = importlib.util.module_from_spec(spec)
        sys.modules[PACK_NAME] = module
        spec.loader.exec_module(module)
    return sys.modules[PACK_NAME]


@pytest.fixture(scope="session")
def test_models() -> TestModels:
    _host_or_skip()
    from tests import models

    models_dir = Path(os.environ.get("RALU_TEST_MODELS_DIR") or models.DEFAULT_DIR)
    if not models.all_current(models_dir):
        models.build_all(models_dir, log=lambda line: print(line, file=sys.stderr))
    return TestModels(
        dir=models_dir.resolve(),
        flux_dev=models.FLUX_DEV,
        flux_schnell=models.FLUX_SCHNELL,
        sd3=models.SD3,
        sd35_large=models.SD35_LARGE,
        sd35_medium=models.SD35_MEDIUM,
        clip_l=models.CLIP_L,
        taef1=models.TAEF1,
        taesd3=models.TAESD3,
        taesd=models.TAESD,
    )


@pytest.fixture(scope="session")
def comfy_host(tmp_path_factory, test_models):
    """The real ComfyUI server, started once per session and stopped (by PID) at its end."""
    from tests.host import start_host

    base_dir = tmp_path_factory.mktemp("comfy-base")
    host = start_host(base_dir, test_models.dir)
    print(f"\nComfyUI {host.url} (pid {host.pid}) answered in {host.start_seconds:.1f} s", file=sys.stderr)
    print(f"ComfyUI log: {host.log_path}", file=sys.stderr)
    try:
        yield host
    finally:
        host.stop()


@pytest.fixture(scope="module")
def fresh_host(tmp_path_factory, test_models):
    from tests.host import start_host

    host = start_host(tmp_path_factory.mktemp("fresh-base"), test_models.dir)
    try:
        yield host
    finally:
        host.stop()


def pytest_collection_modifyitems(config, items):
    for item in items:
        if "comfy_host" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.server)
