"""CLI: `vlmkit serve` — an OpenAI-compatible API and a chat web page for a (fine-tuned) model."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import typer

from .engine_options import ADAPTER, MODEL, with_engine_options

MiB = 2**20


@with_engine_options(remote=False)
def serve(
    model: str = MODEL,
    adapter: Path | None = ADAPTER,
    host: str = typer.Option(
        "127.0.0.1", help="Address to listen on. Loopback by default; use 0.0.0.0 only with --api-key."
    ),
    port: int = typer.Option(8000, help="Port to listen on (0: any free port; the address is printed)."),
    api_key: str | None = typer.Option(
        None,
        envvar="VLMKIT_API_KEY",
        show_envvar=True,
        help="Require 'Authorization: Bearer KEY' on every API route but "
        "/health. Prefer the environment variable: arguments show in ps.",
    ),
    allowed_host: list[str] = typer.Option(
        [],
        help="Also answer requests for this host name (repeatable), e.g. "
        "behind a proxy. Default: loopback names when --host is "
        "loopback (guards against DNS rebinding), any otherwise.",
    ),
    max_batch: int = typer.Option(
        8,
        min=1,
        help="Most requests the engine runs together in one batch (--engine vllm: requests in flight to vLLM, "
        "which batches them continuously).",
    ),
    batch_wait_ms: float = typer.Option(
        15.0, min=0.0, help="How long the first request of a batch waits for others to join."
    ),
    served_model_name: str | None = typer.Option(
        None, help="Model id clients send (default: the folder name or hub id)."
    ),
    allow_remote_media: bool = typer.Option(
        False, help="Let requests reference http(s) image/video URLs. Only public addresses are fetched."
    ),
    trusted_network: list[str] = typer.Option(
        [], help="With --allow-remote-media: also fetch from this network (CIDR, e.g. 10.1.0.0/16; repeatable)."
    ),
    max_tokens: int = typer.Option(2048, min=1, help="Largest max_tokens a request may ask for."),
    default_max_tokens: int = typer.Option(512, min=1, help="max_tokens when a request sets none."),
    max_image_mb: float = typer.Option(10.0, min=0.01, help="Largest image a request may send (MiB)."),
    max_image_pixels: int = typer.Option(4096 * 4096, min=1, help="Largest image (width x height) accepted."),
    max_video_mb: float = typer.Option(32.0, min=0.01, help="Largest video a request may send (MiB)."),
    max_body_mb: float = typer.Option(64.0, min=0.01, help="Largest request body (MiB)."),
    max_prompt_tokens: int = typer.Option(
        8192, min=1, help="Longest prompt in tokens, text and media (never above the model's context); 400 beyond."
    ),
    max_queue: int = typer.Option(256, min=1, help="Requests waiting beyond this are answered 429."),
    header_timeout: float = typer.Option(
        10.0,
        min=0.1,
        help="Seconds a connection has to send its request line and headers (from opening, or from the previous "
        "response); slower clients are disconnected.",
    ),
    body_timeout: float = typer.Option(
        60.0, min=0.1, help="Seconds a request has to send its whole body once its headers arrived; 408 beyond."
    ),
    keep_alive: float = typer.Option(5.0, min=0.1, help="Seconds an idle keep-alive connection stays open."),
    log_level: Literal["critical", "error", "warning", "info", "debug", "trace"] = typer.Option(
        "info", help="uvicorn's log level: info logs one access line per request, warning only problems."
    ),
    engine_options=None,
) -> None:
    """Serve MODEL with an OpenAI-compatible API (/v1/chat/completions, /v1/models, /health) and a web page at /."""
    import ipaddress

    from ..errors import ConfigError
    from ..serve.media_fetch import MediaPolicy
    from ..serve.server import serve as run
    from ..serve.settings import LOOPBACK_HOSTS, ServeSettings

    try:
        networks = tuple(ipaddress.ip_network(n, strict=False) for n in trusted_network)
    except ValueError as exc:
        raise ConfigError(f"--trusted-network: {exc}") from None
    if networks and not allow_remote_media:
        raise ConfigError("--trusted-network only makes sense with --allow-remote-media")
    if api_key is not None and not api_key.strip():
        raise ConfigError("--api-key is empty")
    policy = MediaPolicy(
        max_image_bytes=int(max_image_mb * MiB),
        max_image_pixels=max_image_pixels,
        max_video_bytes=int(max_video_mb * MiB),
        allow_remote=allow_remote_media,
        trusted_networks=networks,
    )
    loopback = host in LOOPBACK_HOSTS or host.startswith("127.")
    hosts: tuple[str, ...] | None = None
    if allowed_host or loopback:
        hosts = (*LOOPBACK_HOSTS, host, *allowed_host)
    name = served_model_name or (Path(model).name if Path(model).exists() else model)
    settings = ServeSettings(
        model_name=name,
        model_aliases=(model,),
        api_key=api_key,
        max_batch=max_batch,
        batch_wait_ms=batch_wait_ms,
        max_queue=max_queue,
        max_body_bytes=int(max_body_mb * MiB),
        header_timeout_s=header_timeout,
        body_timeout_s=body_timeout,
        keep_alive_s=keep_alive,
        max_tokens_cap=max_tokens,
        default_max_tokens=min(default_max_tokens, max_tokens),
        media=policy,
        allowed_hosts=hosts,
    )

    if engine_options.engine == "openai":
        raise ConfigError("vlmkit serve runs --engine hf or --engine vllm (for an endpoint, use it directly)")
    extra: dict = {"max_prompt_tokens": max_prompt_tokens}
    if engine_options.launched:  # vLLM gets the server's caps; requests for `name` go to the adapter, if any
        from ..infer.vllm_launcher import for_server

        engine_options = for_server(engine_options, model, max_prompt_tokens + max_tokens, policy.max_media_per_request)
        extra = {"served_name": name}
    typer.echo(f"loading {model}" + (f" with adapter {adapter}" if adapter else "") + " …", err=True)
    engine = engine_options.load(model, adapter, batch_size=max_batch, **extra)
    try:
        run(engine, settings, host=host, port=port, log_level=log_level, announce=lambda line: typer.echo(line))
    except KeyboardInterrupt:  # uvicorn re-raises the Ctrl-C it handled; for a server it is the normal way out
        pass
    finally:
        if hasattr(engine, "close"):
            engine.close()  # --engine vllm: its server goes too
    typer.echo("server stopped", err=True)


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
