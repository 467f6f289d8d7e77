"""Settings, read once by the CLI and ``runtime`` from the environment (``SMSGATE_`` prefix) and an optional
TOML config file (``--config FILE`` or ``SMSGATE_CONFIG``). Components never read the environment themselves.
"""

from __future__ import annotations

import pathlib
import tomllib
from typing import Annotated, Any

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

# A list from the environment as a comma-separated string (``SMSGATE_TRUSTED_PROXIES=10.0.0.0/8,192.0.2.7``), or a
# TOML array from the config file.
CommaList = Annotated[list[str], NoDecode]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SMSGATE_", extra="ignore")

    data_dir: pathlib.Path = pathlib.Path("data")
    database_url: str | None = None  # default: sqlite file in data_dir
    redis_url: str | None = None  # set: quotas and rate limits are shared by every node through Redis
    redis_prefix: str = "smsgate:"  # key prefix, so several gateways (or test runs) can share one Redis
    config: pathlib.Path | None = None

    host: str = "127.0.0.1"
    port: int = 8080
    public_url: str | None = None  # shown in the quick-start banner; default http://host:port

    sandbox: bool = True  # demo account on first start, when the sandbox network is the only connector
    token_ttl_seconds: int = 3600
    # failed logins from one client address within the window before that address is refused for a while
    auth_failure_limit: int = 10
    auth_failure_window: float = 60.0
    sqlite_synchronous: str = "FULL"  # FULL: every commit is fsync'd (group commit amortises it)
    gil_switch_interval: float = 0.0005  # seconds; see server.serve
    gc_threshold: int = 20_000  # allocations between young-generation collections; see server.serve
    max_request_bytes: int = 1 << 20  # any request body larger is refused before it is read (api.fastpath)

    # dispatcher
    batch_size: int = 500
    claim_lease_seconds: float = 60.0
    poll_interval: float = 0.5
    submit_retry_max_seconds: float = 24 * 3600.0
    node_heartbeat_interval: float = 2.0
    node_dead_after: float = 10.0
    inbound_reassembly_timeout: float = 60.0
    default_balance: str = "100"  # credit of a new account, in the price table's currency

    # sandbox network
    sandbox_receipt_delay: float = 0.2
    sandbox_slow_receipt_delay: float = 30.0

    # throughput limits at accept (the account's own TPS is an account setting); burst = rate * burst_seconds
    sender_tps: float | None = None
    destination_tps: float | None = None
    burst_seconds: float = 1.0

    # KPN dialect
    kpn_max_chars: int = 1000

    # webhooks
    webhooks_allow_private: bool = False
    webhook_timeout: float = 10.0
    webhook_retry_hours: float = 24.0
    webhook_retry_base: float = 10.0  # seconds before the first retry; doubles each time (with jitter)
    webhook_retry_max_delay: float = 3600.0
    webhook_concurrency: int = 64  # deliveries in flight per node
    webhook_per_target_concurrency: int = 4  # per receiver (host:port), so a slow one cannot starve the rest

    # operator credentials (console "sees all accounts")
    operator_token: str | None = None

    # -- security (docs/security.md) -------------------------------------------------------------------------
    # reverse proxies (CIDRs) whose X-Forwarded-For / Forwarded headers name the client; nobody's by default
    trusted_proxies: CommaList = Field(default_factory=list)
    # browser origins the KPN routes answer with Access-Control-Allow-Credentials (others get "*" without)
    cors_origins: CommaList = Field(default_factory=list)
    # HTTP connections (per process): request line + headers cap (431 beyond), time to send a whole request head,
    # idle keep-alive, connections held at once (new ones beyond are refused with a 503 and closed)
    http_max_head_bytes: int = 16 * 1024
    http_head_timeout: float = 10.0
    http_keepalive_timeout: float = 30.0
    http_max_connections: int = 4096
    # how long a process trusts what it cached about an account (credentials, generation) or a number's owner;
    # changes are signalled at once (NOTIFY / Redis), this bounds a lost signal and a change made on SQLite
    cache_seconds: float = 5.0
    token_requests_per_minute: float = 60.0  # tokens issued per client (a live one is handed out again anyway)
    webhook_per_account_concurrency: int = 8  # deliveries in flight per account and node (fair to the others)
    console_streams_per_account: int = 4  # open /console/api/stream per account (or the operator) and process

    # connector and routing tables from the config file
    connectors: list[dict[str, Any]] = Field(default_factory=list)
    routing: dict[str, Any] = Field(default_factory=dict)
    prices: dict[str, Any] = Field(default_factory=dict)
    ported_numbers: dict[str, str] = Field(default_factory=dict)

    @field_validator("trusted_proxies", "cors_origins", mode="before")
    @classmethod
    def _comma_list(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [item.strip() for item in value.replace(";", ",").split(",") if item.strip()]
        return value

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'smsgate.db').resolve()}"

    @property
    def is_sqlite(self) -> bool:
        return self.effective_database_url.startswith("sqlite")


def load(config_file: pathlib.Path | None = None, **overrides: Any) -> Settings:
    """Environment first, then the TOML file for what the environment left unset, then explicit overrides."""
    env = Settings()
    path = config_file or env.config
    data: dict[str, Any] = {}
    if path is not None:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
        data = {k.replace("-", "_"): v for k, v in data.items()}
        data.setdefault("config", path)
    merged = {**data, **env.model_dump(exclude_unset=True), **{k: v for k, v in overrides.items() if v is not None}}
    return Settings(**merged)
