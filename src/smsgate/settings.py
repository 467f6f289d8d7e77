"""Settings, read once by the CLI and ``runtime`` from the environment (``SMSGATE_`` prefix) and an optional
TOML config file (``--config FILE`` or ``SMSGATE_CONFIG``). Components never read the environment themselves.

Reading is strict (``configfile``): an unknown key in the file is an error naming the file, the key and the
nearest valid key; an unknown ``SMSGATE_*`` variable is a warning (the environment is shared with other tools).
"""

from __future__ import annotations

import os
import pathlib
import sys
from collections.abc import Callable, Mapping
from typing import Annotated, Any

import platformdirs
from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict, SettingsError

from smsgate import configfile, errors
from smsgate.core import handsets, pricing, senders
from smsgate.store import engine as store_engine

ENV_PREFIX = "SMSGATE_"

# A list from the environment as a comma-separated string (``SMSGATE_TRUSTED_PROXIES=10.0.0.0/8,192.0.2.7``), or a
# TOML array from the config file.
CommaList = Annotated[list[str], NoDecode]


def default_data_dir() -> pathlib.Path:
    """The per-user data directory (``~/.local/share/smsgate`` on Linux), whatever the working directory."""
    return pathlib.Path(platformdirs.user_data_dir("smsgate", appauthor=False))


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="forbid")

    data_dir: pathlib.Path = Field(default_factory=default_data_dir)
    database_url: str | None = None  # default: sqlite file in data_dir; any usual spelling, see store.engine
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
    batch_max_request_bytes: int = Field(8 << 20, ge=1024)  # the batch endpoints' cap: 5,000 recipients with texts

    # SQLite: 2 splits the node into an accept and a delivery process sharing the file (``split``), one per core
    processes: int = 1

    # dispatcher
    batch_size: int = 500
    claim_lease_seconds: float = 60.0
    poll_interval: float = 0.5
    submit_retry_max_seconds: float = 24 * 3600.0
    node_heartbeat_interval: float = 2.0
    node_dead_after: float = 10.0
    inbound_reassembly_timeout: float = 60.0
    default_balance: str = "100"  # credit of a new account, in the price table's currency
    currency: str = "EUR"  # ISO 4217 code of prices and balances; the console shows them with its decimals

    # sandbox network
    sandbox_receipt_delay: float = 0.2
    sandbox_slow_receipt_delay: float = 30.0
    # what ``GET /sandbox/handsets/{msisdn}/messages/latest`` reads as the one-time code (RE2; first group if any)
    sandbox_otp_pattern: str = handsets.DEFAULT_OTP_PATTERN
    sandbox_waits_per_account: int = 20  # long polls on the handsets open at once per account and process

    # throughput limits at accept (the account's own TPS is an account setting); burst = rate * burst_seconds
    sender_tps: float | None = None
    destination_tps: float | None = None
    burst_seconds: float = 1.0

    # KPN dialect
    kpn_max_chars: int = 1000
    # KPN batch API (/communication/kpn/sms/send): messages items and recipients per call; receipt retry schedule
    kpn_batch_max: int = Field(5000, ge=1, le=100_000)
    batch_max: int = Field(5000, ge=1, le=100_000)  # recipients per POST /v1/batches
    kpn_webhook_retry_delays: CommaList = Field(default_factory=lambda: ["60", "120", "240"])
    # sending (issue 19): the sender of a Kaarai / KPN send without one from an account without a default sender;
    # how long an Idempotency-Key's answer is kept for a retry
    default_sender: str = "smsgate"
    idempotency_hours: float = Field(24.0, gt=0, le=24 * 30)

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

    # operations (issue 15): TLS, logs, readiness
    tls_cert: pathlib.Path | None = None  # PEM certificate chain: serve HTTPS (serve --tls-cert)
    tls_key: pathlib.Path | None = None  # its private key (serve --tls-key)
    tls_self_signed: bool = False  # serve HTTPS with a certificate for 127.0.0.1/localhost kept in the data dir
    log_format: str = "text"  # text or json (serve --log-format)
    access_log: bool = True  # one line per HTTP request: method, path, status, duration, account
    ready_timeout: float = 2.0  # /readyz answers 503 when the database takes longer to take a write

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

    # retention (issue 21), in days; 0 keeps everything (accounts may have their own: smsgate accounts set)
    retention_days: int = Field(0, ge=0)  # messages, parts, events and webhook log deleted after this
    content_retention_days: int = Field(0, ge=0)  # texts, binary payloads and webhook bodies blanked after this
    retention_interval: float = Field(300.0, gt=0)  # seconds between sweeps
    retention_batch: int = Field(100, ge=1, le=10_000)  # most messages per sweep transaction (sized by time)

    # connector and routing tables from the config file
    connectors: list[dict[str, Any]] = Field(default_factory=list)
    routing: dict[str, Any] = Field(default_factory=dict)
    prices: dict[str, Any] = Field(default_factory=dict)
    ported_numbers: dict[str, str] = Field(default_factory=dict)

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: str | None) -> str | None:
        return store_engine.normalise_url(value) if value else None

    @field_validator("currency")
    @classmethod
    def _currency(cls, value: str) -> str:
        pricing.minor_units(value)
        return value

    @field_validator("default_sender")
    @classmethod
    def _default_sender(cls, value: str) -> str:
        try:
            senders.parse_sender(value)
        except errors.ValidationError as exc:
            raise ValueError(exc.message) from None
        return value

    @field_validator("log_format")
    @classmethod
    def _log_format(cls, value: str) -> str:
        if value not in ("text", "json"):
            raise ValueError("must be text or json")
        return value

    @field_validator("sandbox_otp_pattern")
    @classmethod
    def _otp_pattern(cls, value: str) -> str:
        try:
            handsets.compile_pattern(value, "pattern")
        except errors.ValidationError as exc:
            raise ValueError(exc.message.removeprefix("pattern: ")) from None
        return value

    @field_validator("trusted_proxies", "cors_origins", "kpn_webhook_retry_delays", mode="before")
    @classmethod
    def _comma_list(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [item.strip() for item in value.replace(";", ",").split(",") if item.strip()]
        return value

    @field_validator("kpn_webhook_retry_delays")
    @classmethod
    def _retry_delays(cls, value: list[str]) -> list[str]:
        """Seconds after each failed try, e.g. ``60,120,240`` (KPN's: 4 tries at 0, 60, 120 and 240 s)."""
        try:
            delays = [float(v) for v in value]
        except ValueError:
            raise ValueError("must be comma-separated seconds, e.g. 60,120,240") from None
        if len(delays) > 20 or any(not 0 <= d <= 86400 for d in delays):
            raise ValueError("at most 20 delays, each 0 to 86400 seconds")
        return [f"{d:g}" for d in delays]

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'smsgate.db').resolve()}"

    @property
    def masked_database_url(self) -> str:
        """The database URL to show people: the password replaced by ``***``."""
        return store_engine.masked_url(self.effective_database_url)

    @property
    def is_sqlite(self) -> bool:
        return self.effective_database_url.startswith("sqlite")

    @property
    def sqlite_path(self) -> pathlib.Path | None:
        """The SQLite file, or None on PostgreSQL."""
        return store_engine.sqlite_path(self.effective_database_url)


FILE_KEYS = frozenset(Settings.model_fields) - {"config"}  # what a config file may set
TABLE_KEYS = ("connectors", "routing", "prices")  # checked key by key (configfile.check_tables)
# variables the test suite reads (tests/support.py), not settings; never warned about
_NOT_SETTINGS = ("SMSGATE_TEST_",)


def unknown_env(environ: Mapping[str, str]) -> list[str]:
    """A warning line for each ``SMSGATE_*`` variable that is no setting, with the nearest valid name."""
    valid = {ENV_PREFIX + k.upper() for k in Settings.model_fields}
    out = []
    for name in sorted(environ):
        if name.upper().startswith(ENV_PREFIX) and name.upper() not in valid and not name.startswith(_NOT_SETTINGS):
            hint = errors.did_you_mean(name.upper(), valid)
            hint = hint if hint.startswith(" (did") else ""
            out.append(f"smsgate: warning: {name} is not a setting{hint}; ignored")
    return out


_warned: set[str] = set()


def _stderr(line: str) -> None:
    if line not in _warned:  # a command may read the settings more than once: warn once
        _warned.add(line)
        print(line, file=sys.stderr)


def load(
    config_file: pathlib.Path | None = None, *, warn: Callable[[str], None] = _stderr, **overrides: Any
) -> Settings:
    """Environment first, then the TOML file for what the environment left unset, then explicit overrides.

    Raises ``configfile.ConfigError`` naming the file and key, the variable or the option that is wrong."""
    for line in unknown_env(os.environ):
        warn(line)
    try:
        env = Settings()
    except (ValidationError, SettingsError) as exc:
        raise _config_error(exc, {}) from None
    path = config_file or env.config
    data: dict[str, Any] = {}
    if path is not None:
        data = configfile.check(configfile.read_toml(path), path, FILE_KEYS)
    from_env = env.model_dump(exclude_unset=True)
    given = {k: v for k, v in overrides.items() if v is not None}
    sources = {k: f"{path.name if path else '?'}: {k}" for k in data}
    sources.update({k: ENV_PREFIX + k.upper() for k in from_env})
    sources.update({k: "--" + k.replace("_", "-") for k in given})
    merged = {**data, **from_env, **given, "config": path}
    from_variables = [ENV_PREFIX + k.upper() for k in TABLE_KEYS if k in from_env]
    if from_variables:  # tables given as JSON in the environment get the same checks as the file's
        configfile.check_tables({k: merged[k] for k in TABLE_KEYS if k in merged}, "/".join(from_variables))
    try:
        return Settings(**merged)
    except ValidationError as exc:
        raise _config_error(exc, sources) from None


def _config_error(exc: ValidationError | SettingsError, sources: Mapping[str, str]) -> configfile.ConfigError:
    if isinstance(exc, SettingsError):  # a JSON-typed variable that is no JSON (SMSGATE_CONNECTORS=...)
        field = next((f for f in Settings.model_fields if f'"{f}"' in str(exc)), "?")
        return configfile.ConfigError(ENV_PREFIX + field.upper(), "not valid JSON")
    first = exc.errors()[0]
    loc = [str(x) for x in first.get("loc", ())]
    field = loc[0] if loc else "?"
    where = sources.get(field, ENV_PREFIX + field.upper())
    rest = "".join(f"[{x}]" if x.isdigit() else f".{x}" for x in loc[1:])
    msg = str(first.get("msg", "invalid")).removeprefix("Value error, ")
    return configfile.ConfigError(where + rest, msg)
