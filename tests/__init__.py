"""ComfyUI-RALU's tests. Fixtures: tests/conftest.py; the real host: tests/host.py."""
