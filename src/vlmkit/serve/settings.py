"""Everything an operator can set about the server, in one place with safe defaults."""

from __future__ import annotations

from dataclasses import dataclass, field

from .media_fetch import MediaPolicy, MiB

LOOPBACK_HOSTS = ("127.0.0.1", "::1", "localhost")


@dataclass
class ServeSettings:
    model_name: str  # the id clients put in `model` (and /v1/models lists)
    model_aliases: tuple[str, ...] = ()  # other accepted ids, e.g. the path the model was loaded from
    api_key: str | None = None  # when set, every API route but /health needs `Bearer <key>`
    max_batch: int = 8
    batch_wait_ms: float = 15.0
    max_queue: int = 256  # waiting requests beyond this get 429
    max_body_bytes: int = 64 * MiB  # base64 media are 4/3 of their size; a conversation repeats them
    max_tokens_cap: int = 2048
    # Slow or idle clients: request line and headers must arrive within header_timeout_s of the connection
    # opening (or of the previous response), the body within body_timeout_s of the headers; an idle
    # keep-alive connection closes after keep_alive_s.
    header_timeout_s: float = 10.0
    body_timeout_s: float = 60.0
    keep_alive_s: float = 5.0
    default_max_tokens: int = 512
    media: MediaPolicy = field(default_factory=MediaPolicy)
    # Host names the server answers to (None: any). Loopback names by default, so a web page elsewhere cannot
    # reach a local server through DNS rebinding (its requests would carry the attacker's host name).
    allowed_hosts: tuple[str, ...] | None = LOOPBACK_HOSTS

    def accepts_model(self, name: str) -> bool:
        return name == self.model_name or name in self.model_aliases
