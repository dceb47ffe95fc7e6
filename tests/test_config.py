"""Configuration: discovery order, environment providers, validation messages, variants, tiers."""

from __future__ import annotations

from pathlib import Path

import pytest

from ccm_tui.config import ConfigError, ProviderSettings, load_settings, vendor_of
from ccm_tui.core.contract import Variant
from ccm_tui.models import tier_for_model
from ccm_tui.tui.keymap import keymap


@pytest.mark.parametrize(
    ("model", "tier"),
    [
        ("claude-haiku-4-5", "haiku"),
        ("claude-3-5-haiku-20241022", "haiku"),
        ("haiku", "haiku"),
        ("claude-sonnet-4-6", "sonnet"),
        ("anthropic/claude-sonnet-4.5", "sonnet"),
        ("us.anthropic.claude-opus-4-1-20250805-v1:0", "opus"),
        ("claude-opus-5-5", "opus"),
        ("claude-fable-5-2", None),
        ("gpt-4o", None),
        ("sonnetish", None),
    ],
)
def test_tier_for_model(model, tier) -> None:
    assert tier_for_model(model) == tier


@pytest.mark.parametrize(
    ("text", "variant"),
    [
        ("claude-sonnet-4@20250514", Variant("claude-sonnet-4@20250514")),
        (
            "us.anthropic.claude-opus-4-20250514-v1:0@us-east-1",
            Variant("us.anthropic.claude-opus-4-20250514-v1:0", "us-east-1"),
        ),
        ("claude-sonnet-4-5@20250929@europe-west1", Variant("claude-sonnet-4-5@20250929", "europe-west1")),
        ("claude-opus-4-1@global", Variant("claude-opus-4-1", "global")),
        ("gpt-4o", Variant("gpt-4o")),
    ],
)
def test_variant_region_suffix(text, variant) -> None:
    assert Variant.parse(text) == variant


def test_model_mapping_exact_then_tier_then_default_then_passthrough() -> None:
    mapped = ProviderSettings(
        name="p",
        kind="openai",
        base_url="http://x",
        models={
            "claude-opus-4-8": (Variant("exact"),),
            "sonnet": (Variant("tiered"),),
            "default": (Variant("fallback"),),
        },
    )
    assert mapped.variants_for("claude-opus-4-8", "opus") == (Variant("exact"),)
    assert mapped.variants_for("claude-sonnet-4-6", "sonnet") == (Variant("tiered"),)
    assert mapped.variants_for("claude-fable-5-2", None) == (Variant("fallback"),)
    no_default = ProviderSettings(name="q", kind="openai", base_url="http://x", models={"haiku": (Variant("h"),)})
    assert no_default.variants_for("claude-opus-4-8", "opus") == ()
    passthrough = ProviderSettings(name="a", kind="anthropic")
    assert passthrough.variants_for("claude-opus-4-8", "opus") == (Variant("claude-opus-4-8"),)


def test_discovery_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    explicit = tmp_path / "explicit.toml"
    explicit.write_text("[server]\nport = 9001\n")
    from_env = tmp_path / "env.toml"
    from_env.write_text("[server]\nport = 9002\n")
    user = Path(tmp_path / "config" / "ccm-tui" / "config.toml")
    user.parent.mkdir(parents=True)
    user.write_text("[server]\nport = 9003\n")
    assert load_settings(explicit, {"CCM_TUI_CONFIG": str(from_env)}).server.port == 9001
    assert load_settings(None, {"CCM_TUI_CONFIG": str(from_env)}).server.port == 9002
    assert load_settings(None, {}).server.port == 9003


def test_no_file_enables_providers_from_environment() -> None:
    settings = load_settings(None, {"OPENROUTER_API_KEY": "k", "GROQ_API_KEY": "k"})
    assert [p.name for p in settings.providers] == ["openrouter", "groq"]
    assert settings.providers[0].api_key_env == "OPENROUTER_API_KEY"
    assert load_settings(None, {}).providers == ()


def test_full_example_parses(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text("""
[server]
host = "127.0.0.1"
port = 8082
[routing]
strategy = "cost"
first_byte_timeout = 90
[alerts]
daily_usd = 20
[[providers]]
name = "openrouter"
kind = "openai"
base_url = "https://openrouter.ai/api/v1/"
api_key_env = "OPENROUTER_API_KEY"
[providers.models]
haiku = "anthropic/claude-haiku-4.5"
sonnet = ["anthropic/claude-sonnet-4.5", "anthropic/claude-sonnet-4"]
[[providers]]
name = "bedrock"
kind = "bedrock"
region = "us-west-2"
[providers.models]
opus = ["us.anthropic.claude-opus-4-1-20250805-v1:0", "us.anthropic.claude-opus-4-20250514-v1:0@us-east-1"]
""")
    settings = load_settings(path, {})
    router, bedrock = settings.providers
    assert settings.routing.strategy == "cost" and settings.routing.first_byte_timeout == 90
    assert settings.alerts.daily_usd == 20
    assert router.base_url == "https://openrouter.ai/api/v1" and vendor_of(router) == "openrouter"
    assert router.models["sonnet"][1] == Variant("anthropic/claude-sonnet-4")
    assert bedrock.models["opus"][1].region == "us-east-1"
    assert settings.source == path


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("[server]\nport = 70000\n", "server.port: must be between 0 and 65535"),
        ("[server]\nhost = ''\n", "server.host: must not be empty"),
        ("[routing]\nfirst_byte_timeout = -1\n", "routing.first_byte_timeout: must be at least"),
        ("[[providers]]\nkind = 'anthropic'\n", "providers[0].name: missing"),
        ("[[providers]]\nname = 'has space'\nkind = 'anthropic'\n", "providers[0].name: use letters"),
        ("[[providers]]\nname = 'b'\nkind = 'bedrock'\n", "providers[0].region: missing"),
        ("[[providers]]\nname = 'v'\nkind = 'vertex'\nregion = 'us-east5'\n", "providers[0].project: missing"),
        ("[[providers]]\nname = 'o'\nkind = 'openai'\nbase_url = 'http://x'\n", "providers[0].models: missing"),
        ("[[providers]]\nname = 'o'\nkind = 'openai'\nbase_url = 'ftp://x'\n", "providers[0].base_url: must start"),
        ("[[providers]]\nname = 'o'\nkind = 'anthropic'\napi_key = 'sk-123'\n", "providers[0].api_key: unknown key"),
        (
            "[[providers]]\nname='o'\nkind='openai'\nbase_url='http://x'\n[providers.models]\nsonnet = []\n",
            "providers[0].models.sonnet: must be a model id or a non-empty list",
        ),
        ("providers = 3\n", "providers: must be an array of tables"),
        ("keys = 'q'\n", "keys: must be a table"),
        ("[keys]\nhelp = 3\n", "keys.help: must be a key or a non-empty list of keys, got 3"),
        ("[keys]\nhelp = []\n", "keys.help: must be a key or a non-empty list of keys"),
        ("[keys]\nhelp = 'h,f1'\n", "keys.help: 'h,f1' is not one key"),
        ("[keys]\nhelp = ['']\n", "keys.help: '' is not one key"),
    ],
)
def test_validation_names_file_key_and_problem(tmp_path: Path, text, fragment) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as raised:
        load_settings(path, {})
    assert str(raised.value).startswith(f"{path}: ") and fragment in str(raised.value)


def test_keys_table_remaps_bindings_by_id(tmp_path: Path) -> None:
    path = tmp_path / "keys.toml"
    path.write_text("[keys]\ncycle-strategy = 'x'\nquit = ['ctrl+x', 'f10']\nhelp = '/'\n")
    settings = load_settings(path, {})
    assert settings.keys == {"cycle-strategy": ("x",), "quit": ("ctrl+x", "f10"), "help": ("/",)}
    assert keymap(settings) == {"cycle-strategy": "x", "quit": "ctrl+x,f10", "help": "/"}
    path.write_text("[server]\nport = 8083\n")
    assert load_settings(path, {}).keys == {} and keymap(load_settings(path, {})) == {}


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("[keys]\nstrategy = 'x'\n", "keys.strategy: unknown binding id (expected one of: toggle-provider-1,"),
        ("[keys]\nquit = 'escpe'\n", "keys.quit: unknown key name 'escpe'"),
        ("[keys]\nquit = 'cmd+q'\n", "keys.quit: unknown modifier 'cmd'"),
        ("[keys]\nhelp = 's'\n", "keys.help: 's' is already bound to cycle-strategy"),
        ("[keys]\nhelp = 'question_mark'\nfollow = '?'\n", "keys.help: 'question_mark' is already bound to follow"),
    ],
)
def test_keys_naming_an_unknown_binding_or_key_or_a_taken_key_is_an_error(tmp_path: Path, text, fragment) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as raised:
        keymap(load_settings(path, {}))
    assert str(raised.value).startswith(f"{path}: ") and fragment in str(raised.value)


def test_missing_explicit_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the file"):
        load_settings(tmp_path / "nope.toml", {})


@pytest.mark.parametrize(
    ("base_url", "vendor"),
    [
        ("https://openrouter.ai/api/v1", "openrouter"),
        ("https://api.groq.com/openai/v1", "groq"),
        ("https://api.cerebras.ai/v1", "cerebras"),
        ("https://models.github.ai/inference", "github"),
        ("https://generativelanguage.googleapis.com/v1beta/openai", "gemini"),
        ("https://api.openai.com/v1", "openai"),
        ("http://localhost:11434/v1", "custom"),
    ],
)
def test_vendor_from_base_url(base_url, vendor) -> None:
    assert vendor_of(ProviderSettings(name="x", kind="openai", base_url=base_url)) == vendor
