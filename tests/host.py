"""A real ComfyUI server for tests: started from the host `make setup` prepared, with this pack and
the test-only nodes linked into its own base directory, and the test models visible.

    host = start_host(base_dir, models_dir)      # the `comfy_host` fixture does this once a session
    prompt_id = host.queue(prompt)               # POST /prompt; PromptRejected on HTTP 400
    entry = host.wait(prompt_id, timeout=300)    # GET /history/<id>; PromptFailed with the error
    images = host.output_images(entry)           # PIL images through GET /view
    host.stop()

Only the standard library and Pillow are used on the client side.
"""

from __future__ import annotations

import io
import json
import os
import re
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from tests.comfy_path import REPO_ROOT, find_host
from tests.models import extra_model_paths_yaml

PACK_NAME = "ComfyUI-RALU"  # folder name of this pack in custom_nodes, as users install it
TEST_NODES_NAME = "ralu_test_nodes"
TEST_NODES_DIR = Path(__file__).resolve().parent / "comfy_test_nodes"
START_TIMEOUT = 120.0


class HostError(RuntimeError):
    pass


class PromptRejected(HostError):
    """POST /prompt answered with an error (validation failed); `.body` is the JSON error body."""

    def __init__(self, status: int, body: dict):
        self.status, self.body = status, body
        super().__init__(f"POST /prompt -> HTTP {status}: {json.dumps(body, indent=1)[:4000]}")


class PromptFailed(HostError):
    """The prompt ran and failed or was interrupted; `.entry` is its /history entry."""

    def __init__(self, message: str, entry: dict | None = None):
        self.entry = entry
        super().__init__(message)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class ComfyHost:
    process: subprocess.Popen
    port: int
    base_dir: Path
    comfy_dir: Path
    log_path: Path
    start_seconds: float = 0.0
    client_id: str = field(default_factory=lambda: uuid.uuid4().hex)

    # ----------------------------------------------------------------- plumbing
    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def output_dir(self) -> Path:
        return self.base_dir / "output"

    @property
    def input_dir(self) -> Path:
        return self.base_dir / "input"

    def request(self, method: str, path: str, body=None, timeout: float = 60.0) -> tuple[int, bytes]:
        """(status, raw body) of an HTTP request to the server; HTTP errors are returned, not raised."""
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                return resp.status, resp.read()
        except urllib.error.HTTPError as err:
            return err.code, err.read()

    def get_json(self, path: str, timeout: float = 60.0):
        status, raw = self.request("GET", path, timeout=timeout)
        if status != 200:
            raise HostError(f"GET {path} -> HTTP {status}: {raw[:2000]!r}\n{self.log_tail()}")
        return json.loads(raw)

    def post_json(self, path: str, body, timeout: float = 60.0) -> tuple[int, object]:
        status, raw = self.request("POST", path, body, timeout=timeout)
        try:
            return status, json.loads(raw) if raw else None
        except ValueError:
            return status, raw.decode(errors="replace")

    def alive(self) -> bool:
        return self.process.poll() is None

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def plain_log(self) -> str:
        """The log as ComfyUI 0.3.75 writes it: newer ones start each record with a coloured level tag
        ("[INFO] " in ANSI colours), which this removes."""
        return plain_log(self.log_text())

    def log_tail(self, lines: int = 60) -> str:
        tail = "\n".join(self.log_text().splitlines()[-lines:])
        return f"--- last {lines} lines of the ComfyUI log {self.log_path} ---\n{tail}\n--- end of log ---"

    # ----------------------------------------------------------------- API
    def object_info(self, node_class: str | None = None) -> dict:
        """GET /object_info (all nodes) or /object_info/<node_class> (that node's entry, {} if unknown)."""
        if node_class is None:
            return self.get_json("/object_info")
        return self.get_json(f"/object_info/{urllib.parse.quote(node_class)}").get(node_class, {})

    def submit(self, prompt: dict, extra: dict | None = None) -> tuple[int, dict]:
        """POST /prompt; (HTTP status, JSON body) whether it was accepted (200) or rejected (400)."""
        body = {"prompt": prompt, "client_id": self.client_id, **(extra or {})}
        return self.post_json("/prompt", body)

    def queue(self, prompt: dict, extra: dict | None = None) -> str:
        """POST /prompt and return the prompt_id; raises PromptRejected with the error body."""
        status, body = self.submit(prompt, extra)
        if status != 200 or not isinstance(body, dict) or "prompt_id" not in body:
            raise PromptRejected(status, body if isinstance(body, dict) else {"body": body})
        return body["prompt_id"]

    def history(self, prompt_id: str) -> dict | None:
        return self.get_json(f"/history/{prompt_id}").get(prompt_id)

    def wait(self, prompt_id: str, timeout: float = 300.0, poll: float = 0.2) -> dict:
        """The /history entry of a finished prompt; PromptFailed on an error, interruption or timeout."""
        deadline = time.monotonic() + timeout
        while True:
            entry = self.history(prompt_id)
            if entry is not None and entry.get("status", {}).get("completed") is not None:
                status = entry["status"]
                if status.get("status_str") == "success" and status.get("completed"):
                    return entry
                message = f"prompt {prompt_id} failed:\n{describe_failure(entry)}\n{self.log_tail()}"
                raise PromptFailed(message, entry)
            if not self.alive():
                code = self.process.returncode
                raise PromptFailed(f"the ComfyUI server died (exit {code})\n{self.log_tail()}")
            if time.monotonic() > deadline:
                queue = self.get_json("/queue")
                self.interrupt()
                raise PromptFailed(
                    f"prompt {prompt_id} did not finish in {timeout:.0f} s (queue: "
                    f"{len(queue.get('queue_running', []))} running, {len(queue.get('queue_pending', []))} "
                    f"pending); interrupted it\n{self.log_tail()}"
                )
            time.sleep(poll)

    def run(self, prompt: dict, timeout: float = 300.0) -> dict:
        """queue() then wait(): the /history entry of the finished prompt."""
        return self.wait(self.queue(prompt), timeout=timeout)

    @staticmethod
    def output_image_refs(entry: dict) -> list[dict]:
        """The {filename, subfolder, type} of every image the prompt's output nodes reported."""
        refs = []
        for node_id in sorted(entry.get("outputs", {}), key=lambda k: (len(k), k)):
            refs.extend(entry["outputs"][node_id].get("images", []))
        return refs

    def view(self, ref: dict) -> bytes:
        """The bytes of one image the server reported ({filename, subfolder, type}), through GET /view."""
        params = {"filename": ref["filename"], "subfolder": ref.get("subfolder", "")}
        query = urllib.parse.urlencode({**params, "type": ref.get("type", "output")})
        status, raw = self.request("GET", f"/view?{query}")
        if status != 200:
            raise HostError(f"GET /view?{query} -> HTTP {status}\n{self.log_tail()}")
        return raw

    def output_images(self, entry: dict, node_ids=None) -> list:
        """The prompt's output images as PIL images (only those of `node_ids`, if given)."""
        from PIL import Image

        if node_ids is not None:
            entry = {"outputs": {k: v for k, v in entry["outputs"].items() if k in set(node_ids)}}
        images = []
        for ref in self.output_image_refs(entry):
            image = Image.open(io.BytesIO(self.view(ref)))
            image.load()
            images.append(image)
        return images

    def output_paths(self, entry: dict) -> list[Path]:
        """Where the prompt's output images lie on disk (type output/temp/input under base_dir)."""
        return [
            self.base_dir / ref.get("type", "output") / ref.get("subfolder", "") / ref["filename"]
            for ref in self.output_image_refs(entry)
        ]

    def interrupt(self) -> None:
        self.request("POST", "/interrupt", {})

    def free(self, unload_models: bool = True, free_memory: bool = True) -> None:
        """POST /free: unload models / drop caches between tests that need a cold start."""
        self.request("POST", "/free", {"unload_models": unload_models, "free_memory": free_memory})

    def stop(self, timeout: float = 15.0) -> None:
        """Stop the server process (by its PID): SIGTERM, then SIGKILL."""
        if self.alive():
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout)


def plain_log(log: str) -> str:
    """`log` without ANSI colour codes and without a level tag ("[INFO] ") at the start of a line."""
    log = re.sub(r"\x1b\[[0-9;]*m", "", log)
    return re.sub(r"^\[(?:DEBUG|INFO|WARNING|ERROR|CRITICAL)\] ", "", log, flags=re.MULTILINE)


def describe_failure(entry: dict) -> str:
    """A readable account of a failed /history entry: the node, the exception and its traceback."""
    parts = []
    for event, data in entry.get("status", {}).get("messages", []):
        if event == "execution_error":
            parts.append(
                f"node {data.get('node_id')} ({data.get('node_type')}): {data.get('exception_type')}: "
                f"{data.get('exception_message')}\n" + "".join(data.get("traceback", []))
            )
        elif event == "execution_interrupted":
            parts.append(f"interrupted at node {data.get('node_id')} ({data.get('node_type')})")
    return "\n".join(parts) or json.dumps(entry.get("status"), indent=1)


def prepare_base_dir(base_dir: Path, models_dir: Path, pack_dir: Path = REPO_ROOT) -> Path:
    """A fresh ComfyUI base directory: this pack and the test nodes linked into custom_nodes, the
    test models visible through an extra_model_paths.yaml. Returns the yaml's path."""
    for sub in ("custom_nodes", "input", "output", "temp", "user/default", "models"):
        (base_dir / sub).mkdir(parents=True, exist_ok=True)
    for name, target in ((PACK_NAME, pack_dir), (TEST_NODES_NAME, TEST_NODES_DIR)):
        link = base_dir / "custom_nodes" / name
        if not link.is_symlink():
            link.symlink_to(Path(target).resolve(), target_is_directory=True)
    settings = base_dir / "user" / "default" / "comfy.settings.json"
    if not settings.exists():  # keeps the frontend's templates dialog off the canvas in browser tests
        settings.write_text(json.dumps({"Comfy.TutorialCompleted": True}))
    yaml_path = base_dir / "extra_model_paths.yaml"
    yaml_path.write_text(extra_model_paths_yaml(models_dir))
    return yaml_path


def start_host(
    base_dir: Path | str,
    models_dir: Path | str,
    timeout: float = START_TIMEOUT,
    extra_args: tuple[str, ...] = (),
    attempts: int = 3,
) -> ComfyHost:
    """Start `main.py --cpu` on a free port with its own base directory; return once /system_stats
    answers. Raises HostError with the log tail if it exits or does not answer within `timeout`."""
    host = find_host()
    base_dir = Path(base_dir).resolve()
    yaml_path = prepare_base_dir(base_dir, Path(models_dir))
    env = dict(os.environ, PYTHONUNBUFFERED="1", HF_HUB_OFFLINE="1", DO_NOT_TRACK="1")
    env.pop("COMFYUI_DIR", None)
    for attempt in range(1, attempts + 1):
        port = free_port()
        log_path = base_dir / (f"comfyui-{attempt}.log" if attempt > 1 else "comfyui.log")
        cmd = [
            host.python, "main.py",
            "--cpu", "--listen", "127.0.0.1", "--port", str(port), "--disable-api-nodes",
            "--base-directory", str(base_dir),
            "--extra-model-paths-config", str(yaml_path),
            "--database-url", f"sqlite:///{base_dir / 'user' / 'comfyui.db'}",
            "--disable-auto-launch",
            *extra_args,
        ]  # fmt: skip
        start = time.monotonic()
        with open(log_path, "wb") as log:
            log.write(f"$ cd {host.comfy_dir} && {' '.join(cmd)}\n".encode())
            log.flush()
            proc = subprocess.Popen(
                cmd,
                cwd=host.comfy_dir,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        server = ComfyHost(proc, port, base_dir, host.comfy_dir, log_path)
        while True:
            if proc.poll() is not None:
                if re.search(r"address already in use|Errno 98", server.log_text()) and attempt < attempts:
                    break  # lost the race for the port: try another
                code = proc.returncode
                raise HostError(f"ComfyUI exited with {code} while starting\n{server.log_tail(80)}")
            try:
                with urllib.request.urlopen(server.url + "/system_stats", timeout=2) as resp:
                    if resp.status == 200:
                        server.start_seconds = time.monotonic() - start
                        return server
            except (OSError, urllib.error.URLError):
                pass
            if time.monotonic() - start > timeout:
                server.stop()
                raise HostError(
                    f"ComfyUI did not answer /system_stats within {timeout:.0f} s\n{server.log_tail(80)}"
                )
            time.sleep(0.25)
    raise HostError("could not start ComfyUI on a free port")


# --------------------------------------------------------------------- prompts
def flux_txt2img_prompt(
    unet_name: str,
    vae_name: str = "taef1",
    width: int = 256,
    height: int = 256,
    steps: int = 2,
    seed: int = 0,
    cfg: float = 1.0,
    sampler_name: str = "euler",
    scheduler: str = "simple",
    filename_prefix: str = "ralu_test",
) -> dict:
    """API-format prompt with stock nodes only: UNETLoader + RALUTestConditioning (random text
    conditioning) + EmptySD3LatentImage + KSampler + VAELoader/VAEDecode + SaveImage. Node ids are
    "1".."8"; swap node "5" (the KSampler) for a RALU sampler in RALU tests."""
    return {
        "1": {"class_type": "UNETLoader", "inputs": {"unet_name": unet_name, "weight_dtype": "default"}},
        "2": {"class_type": "RALUTestConditioning",
              "inputs": {"seed": seed, "tokens": 77, "family": "flux", "guidance": 3.5, "scale": 1.0}},
        "3": {"class_type": "RALUTestConditioning",
              "inputs": {"seed": seed + 1, "tokens": 77, "family": "flux", "guidance": 3.5, "scale": 1.0}},
        "4": {"class_type": "EmptySD3LatentImage",
              "inputs": {"width": width, "height": height, "batch_size": 1}},
        "5": {"class_type": "KSampler", "inputs": {
            "model": ["1", 0], "positive": ["2", 0], "negative": ["3", 0], "latent_image": ["4", 0],
            "seed": seed, "steps": steps, "cfg": cfg, "sampler_name": sampler_name, "scheduler": scheduler,
            "denoise": 1.0}},
        "6": {"class_type": "VAELoader", "inputs": {"vae_name": vae_name}},
        "7": {"class_type": "VAEDecode", "inputs": {"samples": ["5", 0], "vae": ["6", 0]}},
        "8": {"class_type": "SaveImage", "inputs": {"images": ["7", 0], "filename_prefix": filename_prefix}},
    }  # fmt: skip
