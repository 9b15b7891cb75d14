"""Shared fixtures.

- `comfy_host` (session): the REAL ComfyUI server (tests/host.py::ComfyHost) with this pack and the
  test-only nodes (tests/comfy_test_nodes) in its custom_nodes and the test models visible. Tests
  that use it are marked `server` automatically (`-m "not server"` skips them).
- `test_models` (session): names of the random-weight test models (built on first use if missing).
- `comfy_inprocess` (session): ComfyUI importable in this process, on the CPU; returns the host.

Without a host (`make setup` not run) these fixtures skip, unless RALU_REQUIRE_HOST=1 (set by
`make test` and CI) turns the skip into a failure.
"""

from __future__ import annotations

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
    sd3: str  # UNETLoader unet_name
    clip_l: str  # CLIPLoader clip_name, type "sd3"
    taef1: str  # VAELoader vae_name
    taesd3: str  # VAELoader vae_name

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
        sd3=models.SD3,
        clip_l=models.CLIP_L,
        taef1=models.TAEF1,
        taesd3=models.TAESD3,
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


def pytest_collection_modifyitems(config, items):
    for item in items:
        if "comfy_host" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.server)
