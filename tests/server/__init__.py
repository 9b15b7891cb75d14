"""Tests against the real ComfyUI server (the `comfy_host` fixture); all marked `server`."""
