"""The vendor registry (core/vendors.py): lookups by name, URL and model, and the rows' consistency."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from ccm_tui.config import PROVIDER_KINDS, ProviderSettings, RoutingSettings, providers_from_environment
from ccm_tui.core import vendors
from ccm_tui.core.vendors import (
    CUSTOM,
    VENDORS,
    RateLimitDialect,
    Support,
    environment_vendors,
    model_limits,
    openai_quirks,
    vendor,
    vendor_for_url,
    vendor_or_custom,
)
from ccm_tui.providers.gemini import gemini_base_url
from ccm_tui.providers.openai import OpenAIProvider
from ccm_tui.telemetry.costs import resolve_price


def test_every_row_is_unique_and_names_a_known_kind() -> None:
    names = [row.name for row in VENDORS]
    assert len(names) == len(set(names))
    assert {row.kind for row in VENDORS} <= set(PROVIDER_KINDS)
    hosts = [host for row in VENDORS for host in row.hosts]
    assert len(hosts) == len(set(hosts))


def test_the_registry_imports_only_the_standard_library() -> None:
    tree = ast.parse(Path(vendors.__file__).read_text())
    imported = {
        (node.module or "").split(".")[0] if isinstance(node, ast.ImportFrom) else alias.name.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    }
    assert imported <= {"__future__", "dataclasses", "enum", "re", "urllib"}


@pytest.mark.parametrize(
    ("name", "base_url", "key_env", "dialect", "price_id"),
    [
        ("anthropic", "https://api.anthropic.com", "ANTHROPIC_API_KEY", RateLimitDialect.ANTHROPIC, "anthropic"),
        ("openai", "https://api.openai.com/v1", "OPENAI_API_KEY", RateLimitDialect.OPENAI, "openai"),
        ("openrouter", "https://openrouter.ai/api/v1", "OPENROUTER_API_KEY", RateLimitDialect.OPENROUTER, "openrouter"),
        ("groq", "https://api.groq.com/openai/v1", "GROQ_API_KEY", RateLimitDialect.OPENAI, "groq"),
        ("cerebras", "https://api.cerebras.ai/v1", "CEREBRAS_API_KEY", RateLimitDialect.CEREBRAS, "cerebras"),
        ("github", "https://models.github.ai/inference", "GITHUB_TOKEN", RateLimitDialect.OPENAI, None),
        (
            "gemini",
            "https://generativelanguage.googleapis.com/v1beta",
            "GEMINI_API_KEY",
            RateLimitDialect.NONE,
            "google",
        ),
        ("bedrock", None, "AWS_BEARER_TOKEN_BEDROCK", RateLimitDialect.NONE, "aws"),
        ("vertex", None, None, RateLimitDialect.NONE, "google"),
        (CUSTOM, None, None, RateLimitDialect.UNKNOWN, None),
    ],
)
def test_vendor_rows(name, base_url, key_env, dialect, price_id) -> None:
    row = vendor(name)
    assert row is not None
    if "{region}" not in (row.base_url or ""):
        assert row.base_url_for() == base_url
    assert (row.api_key_env, row.rate_limit_dialect, row.price_provider_id) == (key_env, dialect, price_id)


def test_unknown_names_fall_back_to_the_custom_row() -> None:
    assert vendor("mistral") is None
    assert vendor_or_custom("mistral").name == CUSTOM


@pytest.mark.parametrize(
    ("name", "region", "expected"),
    [
        ("bedrock", "us-west-2", "https://bedrock-runtime.us-west-2.amazonaws.com"),
        ("vertex", "us-east5", "https://us-east5-aiplatform.googleapis.com/v1"),
        ("vertex", "global", "https://aiplatform.googleapis.com/v1"),
        ("vertex", "eu", "https://aiplatform.eu.rep.googleapis.com/v1"),
        ("anthropic", "us-east5", "https://api.anthropic.com"),
    ],
)
def test_regional_base_urls(name: str, region: str, expected: str) -> None:
    row = vendor(name)
    assert row is not None and row.base_url_for(region) == expected


def test_a_regional_base_url_needs_a_region() -> None:
    row = vendor("bedrock")
    assert row is not None
    with pytest.raises(ValueError, match="region"):
        row.base_url_for()


@pytest.mark.parametrize(
    ("base_url", "expected"),
    [
        ("https://openrouter.ai/api/v1", "openrouter"),
        ("https://eu.openrouter.ai/api/v1", "openrouter"),
        ("https://api.groq.com/openai/v1", "groq"),
        ("https://api.cerebras.ai/v1", "cerebras"),
        ("https://models.github.ai/inference", "github"),
        ("https://models.inference.ai.azure.com", "github"),
        ("https://generativelanguage.googleapis.com/v1beta/openai", "gemini"),
        ("https://api.openai.com/v1", "openai"),
        ("https://notopenrouter.ai/v1", CUSTOM),
        ("http://localhost:11434/v1", CUSTOM),
        (None, CUSTOM),
    ],
)
def test_vendor_for_url(base_url: str | None, expected: str) -> None:
    assert vendor_for_url(base_url) == expected


@pytest.mark.parametrize(
    ("name", "model", "output_cap", "thinking_max"),
    [
        ("gemini", "gemini-2.5-flash", 65536, 24576),
        ("gemini", "models/gemini-2.5-flash-preview-05-20", 65536, 24576),
        ("gemini", "gemini-2.5-flash-lite", 65536, 24576),
        ("gemini", "gemini-2.5-pro", 65536, 32768),
        ("anthropic", "claude-opus-4-1-20250805", 32000, None),
        ("anthropic", "claude-opus-4-20250514", 32000, None),
        ("anthropic", "claude-sonnet-4-5", 64000, None),
        ("bedrock", "us.anthropic.claude-sonnet-4-5-20250929-v1:0@us-east-1", 64000, None),
        (
            "bedrock",
            "arn:aws:bedrock:us-east-1:1:inference-profile/global.anthropic.claude-haiku-4-5-v1:0",
            64000,
            None,
        ),
        ("vertex", "claude-opus-4-1@20250805", 32000, None),
        ("openai", "gpt-4.1-mini", 32768, None),
        ("openai", "gpt-5", 128000, None),
        # An aggregator's publisher/model id gets the publisher's limits.
        ("openrouter", "google/gemini-2.5-flash", 65536, 24576),
        ("openrouter", "anthropic/claude-sonnet-4.5", 64000, None),
        ("github", "openai/gpt-4.1", 32768, None),
    ],
)
def test_model_limits(name: str, model: str, output_cap: int, thinking_max: int | None) -> None:
    limits = model_limits(name, model)
    assert limits is not None
    assert (limits.output_cap, limits.max_thinking_budget) == (output_cap, thinking_max)


@pytest.mark.parametrize(
    ("name", "model"),
    [
        ("anthropic", "claude-opus-4-2"),  # a newer minor version is not claude-opus-4
        ("openai", "gpt-4o"),
        ("openrouter", "meta-llama/llama-3.3-70b"),  # neither the row nor a publisher knows it
        ("mistral", "mistral-large"),
    ],
)
def test_model_limits_unknown(name: str, model: str) -> None:
    assert model_limits(name, model) is None


@pytest.mark.parametrize(
    ("name", "model", "developer", "sampling", "cap"),
    [
        ("openai", "gpt-5", True, False, 128000),  # the model's output cap
        ("openai", "o3-mini", True, False, None),
        ("openai", "gpt-4.1", False, True, 32768),
        ("github", "openai/o4-mini", True, False, 4000),
        ("openrouter", "openai/gpt-5", False, True, 32000),
        ("groq", "openai/gpt-oss-120b", False, True, 32768),
        ("cerebras", "gpt-oss-120b", False, True, 8192),
        ("gemini", "gemini-2.5-pro", False, True, 65536),
        (CUSTOM, "o3", True, False, None),
        ("mistral", "o3", False, True, None),  # unknown vendor: custom quirks, no reasoning-model guess
        ("anthropic", "claude-sonnet-4-5", False, True, None),  # no Chat Completions row: custom quirks
    ],
)
def test_openai_quirks(name: str, model: str, developer: bool, sampling: bool, cap: int | None) -> None:
    quirks = openai_quirks(name, model)
    assert (quirks.system_role == "developer", quirks.sampling_params) == (developer, sampling)
    assert quirks.default_max_output_tokens == cap


def test_vendor_specific_quirks_survive() -> None:
    assert openai_quirks("groq", "m").usage_in_x_groq
    assert openai_quirks("openrouter", "m").headers == {"X-Title": "ccm-tui"}
    assert openai_quirks("github", "m").headers["X-GitHub-Api-Version"] == "2022-11-28"
    assert openai_quirks("gemini", "m").gemini_schema and not openai_quirks("gemini", "m").send_user
    assert not openai_quirks("cerebras", "m").parallel_tool_calls


def test_environment_providers_follow_the_registry_order() -> None:
    rows = environment_vendors()
    assert [row.name for row in rows] == ["anthropic", "openrouter", "openai", "groq", "cerebras", "github", "gemini"]
    environ = {row.api_key_env: "k" for row in rows if row.api_key_env}
    providers = providers_from_environment(environ)
    assert [p.name for p in providers] == [row.name for row in rows]
    router = providers[1]
    assert router.kind == "openai" and router.base_url == "https://openrouter.ai/api/v1"
    assert router.models["sonnet"][0].model == "anthropic/claude-sonnet-4.5"
    assert providers_from_environment({"GROQ_API_KEY": "k"})[0].models["haiku"][0].model == "llama-3.1-8b-instant"


async def test_default_endpoints_come_from_the_registry() -> None:
    gemini_openai = ProviderSettings(name="g", kind="openai", vendor="gemini", models={})
    provider = OpenAIProvider(gemini_openai, RoutingSettings())
    await provider.aclose()
    assert provider.endpoint == "https://generativelanguage.googleapis.com/v1beta/openai/chat/completions"
    assert gemini_base_url(None) == "https://generativelanguage.googleapis.com/v1beta"


def test_github_models_are_free_and_capabilities_default_to_unknown() -> None:
    github = ProviderSettings(name="gh", kind="openai", base_url="https://models.github.ai/inference", models={})
    price = resolve_price(github, "openai/gpt-4.1", 0.0)
    assert price is not None and price.base.input == 0.0 and price.base.output == 0.0
    row = vendor("groq")
    assert row is not None and row.capabilities.structured_outputs is Support.UNKNOWN
