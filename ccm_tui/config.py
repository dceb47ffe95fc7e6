"""Configuration: TOML file + environment -> typed, validated Settings.

Discovery order: `--config PATH`, else `$CCM_TUI_CONFIG`, else `<user config dir>/ccm-tui/config.toml`.
With no file, providers are enabled from the usual API-key environment variables. Every validation error
names the file, the key and the problem (ConfigError). Keys never live in the TOML: a provider names the
environment variable that holds its key, or falls back to the OS keyring (see secrets.py).
"""

from __future__ import annotations

import builtins
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, overload

import platformdirs

from ccm_tui.core.contract import Variant
from ccm_tui.core.hosts import is_valid_origin, normal_host
from ccm_tui.core.vendors import environment_vendors, vendor_for_url, vendor_or_custom
from ccm_tui.models import TIERS

PROVIDER_KINDS = ("anthropic", "openai", "bedrock", "vertex", "gemini")
STRATEGIES = ("ordered", "cost", "latency", "availability", "balanced")
REQUEST_CLASSES = ("main", "subagent", "workflow", "compaction", "auxiliary")  # core/hints.RequestClass values


class ConfigError(Exception):
    """A configuration problem, phrased for the user: `file: key: problem`."""


@dataclass(frozen=True)
class ServerSettings:
    host: str = "127.0.0.1"
    port: int = 8082
    auth_key_env: str | None = None
    max_body_mb: float = 32.0
    allowed_hosts: tuple[str, ...] = ()  # Host names answered besides IP addresses, localhost and `host`
    allowed_origins: tuple[str, ...] = ()  # browser origins allowed to call the proxy (CORS); none by default


@dataclass(frozen=True)
class RoutingSettings:
    strategy: str = "ordered"
    connect_timeout: float = 10.0
    first_byte_timeout: float = 120.0  # models that think can be silent for a long time before the first byte
    idle_timeout: float = 300.0  # between two chunks of a stream
    cooldown_base: float = 2.0  # first back-off when the upstream gives no reset time; doubles per failure
    cooldown_max: float = 300.0
    disable_seconds: float = 3600.0  # "long disable" for auth / billing failures
    # --- failover (README "Failover") ---
    backoff_max: float = 15.0  # cap of a cool-down the upstream gave no time for: the recovery probe's schedule
    ttft_floor: float = 5.0  # the time-to-first-token deadline never goes below this (seconds) ...
    ttft_ceiling: float = 60.0  # ... nor above this; it is the deadline while a variant has no recent samples
    ttft_factor: float = 4.0  # deadline = factor x the variant's recent 90th-percentile time to first token
    stall_seconds: float = 60.0  # no byte for this long after content was sent: a stall, rescued elsewhere
    ping_interval: float = 10.0  # `event: ping` to the client after this much upstream silence
    hold_seconds: float = 20.0  # hold a request while every candidate cools, if one recovers this soon (0 = off)


# --- limit avoidance: quota threshold, key pools, session affinity, request classes, budget (issue 14) ---------


class KeyRotation(StrEnum):
    ROUND_ROBIN = "round-robin"  # each request takes the next key
    FILL_FIRST = "fill-first"  # the first key with room until it is past the threshold, then the next


class BudgetAction(StrEnum):
    ALERT = "alert"  # at the cap: alert only
    CHEAPEST = "cheapest"  # at the cap: only providers priced at zero or below cheap_usd_per_mtok
    REFUSE = "refuse"  # at the cap: refuse requests with an Anthropic-shaped error


@dataclass(frozen=True)
class LocalLimits:
    """Limits counted here for upstreams that send no quota headers: requests/min, tokens/min, requests/day."""

    rpm: int | None = None
    tpm: int | None = None
    rpd: int | None = None

    def __bool__(self) -> bool:
        return any(v is not None for v in (self.rpm, self.tpm, self.rpd))


@dataclass(frozen=True)
class ClassRule:
    """How one request class (or agent type) routes: another strategy, and/or only these providers."""

    strategy: str | None = None
    providers: tuple[str, ...] | None = None


@dataclass(frozen=True)
class SteeringSettings:
    """`[routing]` keys that steer around limits, and `[routing.classes]` / `[routing.agent_types]`."""

    quota_threshold: float = 0.8  # at this fraction of a quota window used, a provider goes behind the others
    session_affinity: bool = True  # a Claude Code session stays on the provider that served it last
    affinity_sessions: int = 1000  # sessions remembered (least recently used forgotten first)
    affinity_ttl: float = 3600.0  # a session idle this long (seconds) is forgotten
    classes: Mapping[str, ClassRule] = field(default_factory=dict)  # request class -> rule
    agent_types: Mapping[str, ClassRule] = field(default_factory=dict)  # agent type (Explore, Plan ...) -> rule


@dataclass(frozen=True)
class BudgetSettings:
    daily_usd: float | None = None  # since local midnight
    hourly_usd: float | None = None  # the rolling hour
    action: BudgetAction = BudgetAction.ALERT
    cheap_usd_per_mtok: float = 1.0  # "cheap" for action = "cheapest": blended USD per million tokens


STEERING_KEYS = {"quota_threshold", "session_affinity", "affinity_sessions", "affinity_ttl", "classes", "agent_types"}


@dataclass(frozen=True)
class AlertSettings:
    hourly_usd: float | None = None
    daily_usd: float | None = None


@dataclass(frozen=True)
class ProviderSettings:
    name: str
    kind: str
    base_url: str | None = None
    api_key_env: str | None = None
    models: Mapping[str, tuple[Variant, ...]] = field(default_factory=dict)
    enabled: bool = True
    vendor: str | None = None  # a core/vendors.py row name; guessed from base_url when absent
    region: str | None = None
    project: str | None = None
    credentials_file: str | None = None
    betas: tuple[str, ...] | None = None  # anthropic-beta values this target accepts; None = pass all through
    max_output_tokens: int | None = None  # clamp max_tokens to this
    headers: Mapping[str, str] = field(default_factory=dict)
    connect_timeout: float | None = None
    first_byte_timeout: float | None = None
    price_input_mtok: float | None = None  # user price override, USD per million tokens
    price_output_mtok: float | None = None
    more_key_envs: tuple[str, ...] = ()  # `api_key_env = ["A", "B"]`: the names after the first (a key pool)
    key_rotation: KeyRotation = KeyRotation.ROUND_ROBIN
    quota_threshold: float | None = None  # overrides [routing] quota_threshold
    limits: LocalLimits = field(default_factory=LocalLimits)  # counted locally (no quota headers upstream)
    variant_limits: Mapping[str, LocalLimits] = field(default_factory=dict)  # variant key -> its own limits

    @property
    def key_envs(self) -> tuple[str, ...]:
        """Every environment variable that holds one of this provider's keys, in pool order."""
        return ((self.api_key_env,) if self.api_key_env else ()) + self.more_key_envs

    # --- failover (README "Failover") ---
    ttft_floor: float | None = None  # this provider's time-to-first-token bounds; None = the [routing] ones
    ttft_ceiling: float | None = None
    prefill: bool | None = None  # accepts an assistant prefill (rescue target); None = the vendor registry says

    def variants_for(self, requested_model: str, tier: str | None) -> tuple[Variant, ...]:
        """The variants this provider offers for a request, best first; empty when it cannot serve it."""
        for key in (requested_model, tier, "default"):
            if key and key in self.models:
                return self.models[key]
        if self.kind == "anthropic" and not self.models:
            return (Variant(requested_model),)
        return ()


@dataclass(frozen=True)
class Settings:
    server: ServerSettings = field(default_factory=ServerSettings)
    routing: RoutingSettings = field(default_factory=RoutingSettings)
    alerts: AlertSettings = field(default_factory=AlertSettings)
    steering: SteeringSettings = field(default_factory=SteeringSettings)
    budget: BudgetSettings = field(default_factory=BudgetSettings)
    providers: tuple[ProviderSettings, ...] = ()
    history_path: Path | None = None  # None = <user data dir>/ccm-tui/history.sqlite3
    history_enabled: bool = True
    # [keys]: binding id -> the keys that replace its defaults; which ids and key names exist is the TUI's
    # fact, checked by tui/keymap.py (config reads only the table's shape).
    keys: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    source: Path | None = None  # the file these settings came from, if any

    def with_server(self, host: str | None = None, port: int | None = None) -> Settings:
        server = ServerSettings(
            host=host if host is not None else self.server.host,
            port=port if port is not None else self.server.port,
            auth_key_env=self.server.auth_key_env,
            max_body_mb=self.server.max_body_mb,
            allowed_hosts=self.server.allowed_hosts,
            allowed_origins=self.server.allowed_origins,
        )
        return _replace(self, server=server)


def _replace(obj: Any, **changes: Any) -> Any:
    from dataclasses import replace

    return replace(obj, **changes)


def default_config_path() -> Path:
    return Path(platformdirs.user_config_dir("ccm-tui")) / "config.toml"


def default_data_dir() -> Path:
    return Path(platformdirs.user_data_dir("ccm-tui"))


def find_config_path(explicit: str | os.PathLike[str] | None, environ: Mapping[str, str]) -> Path | None:
    """The config file to read, or None when there is none (an explicit path must exist)."""
    if explicit:
        return Path(explicit)
    if environ.get("CCM_TUI_CONFIG"):
        return Path(environ["CCM_TUI_CONFIG"])
    path = default_config_path()
    return path if path.exists() else None


def load_settings(explicit: str | os.PathLike[str] | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    environ = os.environ if environ is None else environ
    path = find_config_path(explicit, environ)
    if path is None:
        return Settings(providers=providers_from_environment(environ))
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the file: {exc.strerror or exc}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    settings = parse_settings(data, str(path))
    if not settings.providers and "providers" not in data:
        settings = _replace(settings, providers=providers_from_environment(environ))
    return _replace(settings, source=path)


def providers_from_environment(environ: Mapping[str, str]) -> tuple[ProviderSettings, ...]:
    """One provider per registry vendor whose key variable is set (core/vendors.py says which, in what order)."""
    providers = []
    for row in environment_vendors():
        if row.api_key_env and environ.get(row.api_key_env):
            providers.append(
                ProviderSettings(
                    name=row.name,
                    kind=row.kind,
                    base_url=row.base_url,
                    api_key_env=row.api_key_env,
                    models={tier: (Variant.parse(model),) for tier, model in row.environment_models},
                )
            )
    return tuple(providers)


# --- validation -------------------------------------------------------------------------------------------


class _Reader:
    """Reads typed values out of a TOML table, raising ConfigError that names file and dotted key."""

    def __init__(self, source: str, table: Mapping[str, Any], prefix: str) -> None:
        self.source, self.table, self.prefix = source, table, prefix

    def error(self, key: str, problem: str) -> ConfigError:
        dotted = f"{self.prefix}.{key}" if self.prefix else key
        return ConfigError(f"{self.source}: {dotted}: {problem}")

    def reject_unknown(self, known: set[str]) -> None:
        for key in self.table:
            if key not in known:
                raise self.error(key, f"unknown key (expected one of: {', '.join(sorted(known))})")

    def _get(self, key: str, types: tuple[type, ...], what: str, default: Any) -> Any:
        if key not in self.table:
            return default
        value = self.table[key]
        if isinstance(value, bool) and bool not in types:
            raise self.error(key, f"must be {what}, got {value!r}")
        if not isinstance(value, types):
            raise self.error(key, f"must be {what}, got {value!r}")
        return value

    def str(self, key: str, default: str | None = None) -> str | None:
        value = self._get(key, (str,), "a string", default)
        if value is not None and not value.strip():
            raise self.error(key, "must not be empty")
        return value

    # The methods below are annotated with `builtins.str`: inside the class body `str` is the method above.
    def optional_bool(self, key: builtins.str) -> bool | None:
        value: bool | None = self._get(key, (bool,), "true or false", None)
        return value

    def bool(self, key: builtins.str, default: bool) -> bool:
        return self._get(key, (bool,), "true or false", default)

    @overload
    def number(self, key: builtins.str, default: float, minimum: float = 0.0) -> float: ...
    @overload
    def number(self, key: builtins.str, default: None, minimum: float = 0.0) -> float | None: ...
    def number(self, key: builtins.str, default: float | None, minimum: float = 0.0) -> float | None:
        value = self._get(key, (int, float), "a number", default)
        if value is not None and value < minimum:
            raise self.error(key, f"must be at least {minimum:g}, got {value!r}")
        return float(value) if value is not None else None

    def int(self, key: builtins.str, default: int | None, minimum: int = 0, maximum: int | None = None) -> int | None:
        value = self._get(key, (int,), "a whole number", default)
        if value is not None and (value < minimum or (maximum is not None and value > maximum)):
            bounds = f"between {minimum} and {maximum}" if maximum is not None else f"at least {minimum}"
            raise self.error(key, f"must be {bounds}, got {value!r}")
        return value

    def table_of(self, key: builtins.str) -> _Reader:
        value = self._get(key, (dict,), "a table", {})
        dotted = f"{self.prefix}.{key}" if self.prefix else key
        return _Reader(self.source, value, dotted)

    def str_list(self, key: builtins.str) -> tuple[builtins.str, ...] | None:
        value = self._get(key, (list,), "a list of strings", None)
        if value is None:
            return None
        if not all(isinstance(item, str) for item in value):
            raise self.error(key, "must be a list of strings")
        return tuple(value)


def parse_settings(data: Mapping[str, Any], source: str) -> Settings:
    root = _Reader(source, data, "")
    root.reject_unknown({"server", "routing", "alerts", "budget", "history", "providers", "keys"})

    server_table = root.table_of("server")
    server_table.reject_unknown({"host", "port", "auth_key_env", "max_body_mb", "allowed_hosts", "allowed_origins"})
    server = ServerSettings(
        host=server_table.str("host", "127.0.0.1") or "127.0.0.1",
        port=server_table.int("port", 8082, minimum=0, maximum=65535) or 0,
        auth_key_env=server_table.str("auth_key_env"),
        max_body_mb=server_table.number("max_body_mb", 32.0, minimum=0.001) or 32.0,
        allowed_hosts=_allowed_hosts(server_table),
        allowed_origins=_allowed_origins(server_table),
    )

    routing_table = root.table_of("routing")
    defaults = RoutingSettings()
    routing_table.reject_unknown(set(defaults.__dataclass_fields__) | STEERING_KEYS)
    strategy = routing_table.str("strategy", "ordered") or "ordered"
    if strategy not in STRATEGIES:
        raise routing_table.error("strategy", f"must be one of {', '.join(STRATEGIES)}, got {strategy!r}")
    routing = RoutingSettings(
        strategy=strategy,
        **{
            name: routing_table.number(name, getattr(defaults, name), minimum=0.0 if name == "hold_seconds" else 0.001)
            for name in defaults.__dataclass_fields__
            if name != "strategy"
        },
    )

    alerts_table = root.table_of("alerts")
    alerts_table.reject_unknown({"hourly_usd", "daily_usd"})
    alerts = AlertSettings(
        hourly_usd=alerts_table.number("hourly_usd", None), daily_usd=alerts_table.number("daily_usd", None)
    )

    history_table = root.table_of("history")
    history_table.reject_unknown({"path", "enabled"})
    history_path = history_table.str("path")

    raw_providers = data.get("providers", [])
    if not isinstance(raw_providers, list) or not all(isinstance(p, dict) for p in raw_providers):
        raise root.error("providers", "must be an array of tables ([[providers]])")
    providers = tuple(
        _parse_provider(_Reader(source, table, f"providers[{index}]")) for index, table in enumerate(raw_providers)
    )
    names = [p.name for p in providers]
    for index, name in enumerate(names):
        if name in names[:index]:
            raise ConfigError(f"{source}: providers[{index}].name: duplicate provider name {name!r}")

    steering = _parse_steering(routing_table, names)
    return Settings(
        server=server,
        routing=routing,
        alerts=alerts,
        steering=steering,
        budget=_parse_budget(root.table_of("budget")),
        providers=providers,
        history_path=Path(history_path).expanduser() if history_path else None,
        history_enabled=history_table.bool("enabled", True),
        keys=_parse_keys(root.table_of("keys")),
    )


def _parse_steering(routing: _Reader, provider_names: list[str]) -> SteeringSettings:
    defaults = SteeringSettings()
    threshold = routing.number("quota_threshold", defaults.quota_threshold, minimum=0.01)
    if threshold > 1:
        raise routing.error("quota_threshold", f"must be a fraction between 0.01 and 1, got {threshold!r}")
    return SteeringSettings(
        quota_threshold=threshold,
        session_affinity=routing.bool("session_affinity", defaults.session_affinity),
        affinity_sessions=routing.int("affinity_sessions", defaults.affinity_sessions, minimum=1) or 1,
        affinity_ttl=routing.number("affinity_ttl", defaults.affinity_ttl, minimum=1.0),
        classes=_parse_rules(routing.table_of("classes"), provider_names, REQUEST_CLASSES),
        agent_types=_parse_rules(routing.table_of("agent_types"), provider_names, None),
    )


def _parse_rules(table: _Reader, provider_names: list[str], known: tuple[str, ...] | None) -> dict[str, ClassRule]:
    rules: dict[str, ClassRule] = {}
    for name in table.table:
        if known is not None and name not in known:
            raise table.error(name, f"unknown request class (expected one of: {', '.join(known)})")
        rule = table.table_of(name)
        rule.reject_unknown({"strategy", "providers"})
        strategy = rule.str("strategy")
        if strategy is not None and strategy not in STRATEGIES:
            raise rule.error("strategy", f"must be one of {', '.join(STRATEGIES)}, got {strategy!r}")
        providers = rule.str_list("providers")
        for provider in providers or ():
            if provider not in provider_names:
                raise rule.error("providers", f"{provider!r} is not a configured provider")
        if providers is not None and not providers:
            raise rule.error("providers", "must name at least one provider")
        rules[name] = ClassRule(strategy=strategy, providers=providers)
    return rules


def _parse_budget(table: _Reader) -> BudgetSettings:
    table.reject_unknown({"daily_usd", "hourly_usd", "action", "cheap_usd_per_mtok"})
    action = table.str("action", BudgetAction.ALERT.value) or BudgetAction.ALERT.value
    if action not in tuple(BudgetAction):
        raise table.error("action", f"must be one of {', '.join(BudgetAction)}, got {action!r}")
    return BudgetSettings(
        daily_usd=table.number("daily_usd", None, minimum=0.01),
        hourly_usd=table.number("hourly_usd", None, minimum=0.01),
        action=BudgetAction(action),
        cheap_usd_per_mtok=table.number("cheap_usd_per_mtok", BudgetSettings.cheap_usd_per_mtok),
    )


def _parse_limits(table: _Reader) -> LocalLimits:
    return LocalLimits(
        rpm=table.int("rpm", None, minimum=1),
        tpm=table.int("tpm", None, minimum=1),
        rpd=table.int("rpd", None, minimum=1),
    )


def _parse_key_envs(table: _Reader, kind: str | None) -> tuple[str | None, tuple[str, ...]]:
    """`api_key_env`: one variable name, or a list of them (a key pool)."""
    raw = table.table.get("api_key_env")
    if not isinstance(raw, list):
        return table.str("api_key_env"), ()
    names = table.str_list("api_key_env") or ()
    if not names or not all(n.strip() for n in names):
        raise table.error("api_key_env", "must name at least one environment variable, and none empty")
    if len(set(names)) != len(names):
        raise table.error("api_key_env", "names a variable twice")
    if kind == "vertex" and len(names) > 1:
        raise table.error("api_key_env", "a vertex provider takes one token, not a pool of keys")
    return names[0], names[1:]


def _parse_keys(table: _Reader) -> dict[str, tuple[str, ...]]:
    keys: dict[str, tuple[str, ...]] = {}
    for binding_id, value in table.table.items():
        entries = [value] if isinstance(value, str) else value
        if not isinstance(entries, list) or not entries or not all(isinstance(e, str) for e in entries):
            raise table.error(binding_id, f"must be a key or a non-empty list of keys, got {value!r}")
        for entry in entries:
            if not entry.strip() or "," in entry or entry != entry.strip():
                raise table.error(binding_id, f'{entry!r} is not one key (list several as ["a", "b"])')
        keys[binding_id] = tuple(entries)
    return keys


def _allowed_hosts(table: _Reader) -> tuple[str, ...]:
    hosts = table.str_list("allowed_hosts") or ()
    for host in hosts:
        if normal_host(host) is None:
            raise table.error("allowed_hosts", f"{host!r} is not a host name or IP address (no scheme, no port)")
    return hosts


def _allowed_origins(table: _Reader) -> tuple[str, ...]:
    origins = table.str_list("allowed_origins") or ()
    for origin in origins:
        if not is_valid_origin(origin):
            raise table.error("allowed_origins", f"{origin!r} is not an origin like https://app.example:8443")
    return origins


_PROVIDER_KEYS = {
    "name",
    "kind",
    "base_url",
    "api_key_env",
    "models",
    "enabled",
    "vendor",
    "region",
    "project",
    "credentials_file",
    "betas",
    "max_output_tokens",
    "headers",
    "connect_timeout",
    "first_byte_timeout",
    "price_input_mtok",
    "price_output_mtok",
    "key_rotation",
    "quota_threshold",
    "rpm",
    "tpm",
    "rpd",
    "variant_limits",
    "ttft_floor",
    "ttft_ceiling",
    "prefill",
}

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$")


def _parse_provider(table: _Reader) -> ProviderSettings:
    table.reject_unknown(_PROVIDER_KEYS)
    name = table.str("name")
    if name is None:
        raise table.error("name", "missing (every provider needs a unique name)")
    if not _NAME.match(name):
        raise table.error("name", "use letters, digits, '-', '_' or '.' (at most 32 characters)")
    kind = table.str("kind")
    if kind not in PROVIDER_KINDS:
        raise table.error("kind", f"must be one of {', '.join(PROVIDER_KINDS)}, got {kind!r}")
    base_url = table.str("base_url")
    if base_url is not None and not re.match(r"^https?://", base_url):
        raise table.error("base_url", f"must start with http:// or https://, got {base_url!r}")
    if kind == "openai" and base_url is None:
        raise table.error("base_url", "missing (the OpenAI-compatible endpoint, e.g. https://api.openai.com/v1)")
    region = table.str("region")
    project = table.str("project")
    if kind == "bedrock" and region is None:
        raise table.error("region", "missing (the AWS region, e.g. us-west-2)")
    if kind == "vertex" and (region is None or project is None):
        key = "project" if project is None else "region"
        raise table.error(key, "missing (Vertex AI needs project and region)")

    models_table = table.table_of("models")
    models: dict[str, tuple[Variant, ...]] = {}
    for key, value in models_table.table.items():
        entries = [value] if isinstance(value, str) else value
        if not isinstance(entries, list) or not entries or not all(isinstance(e, str) and e for e in entries):
            raise models_table.error(key, "must be a model id or a non-empty list of model ids")
        models[key] = tuple(Variant.parse(e) for e in entries)
    if kind != "anthropic" and not models:
        raise table.error("models", f"missing (a {kind} provider needs at least one of {', '.join(TIERS)} or default)")

    headers = table.table_of("headers")
    if not all(isinstance(v, str) for v in headers.table.values()):
        raise table.error("headers", "values must be strings")
    api_key_env, more_key_envs = _parse_key_envs(table, kind)
    if kind == "gemini" and api_key_env is None:
        api_key_env = vendor_or_custom("gemini").api_key_env

    return ProviderSettings(
        name=name,
        kind=kind,
        base_url=base_url.rstrip("/") if base_url else None,
        api_key_env=api_key_env,
        models=models,
        enabled=table.bool("enabled", True),
        vendor=table.str("vendor"),
        region=region,
        project=project,
        credentials_file=table.str("credentials_file"),
        betas=table.str_list("betas"),
        max_output_tokens=table.int("max_output_tokens", None, minimum=1),
        headers=dict(headers.table),
        connect_timeout=table.number("connect_timeout", None, minimum=0.001),
        first_byte_timeout=table.number("first_byte_timeout", None, minimum=0.001),
        price_input_mtok=table.number("price_input_mtok", None),
        price_output_mtok=table.number("price_output_mtok", None),
        more_key_envs=more_key_envs,
        key_rotation=_key_rotation(table),
        quota_threshold=_threshold(table),
        limits=_parse_limits(table),
        variant_limits=_variant_limits(table.table_of("variant_limits")),
        ttft_floor=table.number("ttft_floor", None, minimum=0.001),
        ttft_ceiling=table.number("ttft_ceiling", None, minimum=0.001),
        prefill=table.optional_bool("prefill"),
    )


def _key_rotation(table: _Reader) -> KeyRotation:
    rotation = table.str("key_rotation", KeyRotation.ROUND_ROBIN.value) or KeyRotation.ROUND_ROBIN.value
    if rotation not in tuple(KeyRotation):
        raise table.error("key_rotation", f"must be one of {', '.join(KeyRotation)}, got {rotation!r}")
    return KeyRotation(rotation)


def _threshold(table: _Reader) -> float | None:
    threshold = table.number("quota_threshold", None, minimum=0.01)
    if threshold is not None and threshold > 1:
        raise table.error("quota_threshold", f"must be a fraction between 0.01 and 1, got {threshold!r}")
    return threshold


def _variant_limits(table: _Reader) -> dict[str, LocalLimits]:
    limits = {}
    for key in table.table:
        entry = table.table_of(key)
        entry.reject_unknown({"rpm", "tpm", "rpd"})
        limits[key] = _parse_limits(entry)
    return limits


def vendor_of(provider: ProviderSettings) -> str:
    """Which vendor's registry row (quirks, error shapes, prices) applies: the `vendor` key, else guessed from
    the URL. For kinds other than `openai` the kind is the vendor; an unknown OpenAI-compatible host is "custom".
    """
    if provider.vendor:
        return provider.vendor
    if provider.kind != "openai":
        return provider.kind
    return vendor_for_url(provider.base_url)
