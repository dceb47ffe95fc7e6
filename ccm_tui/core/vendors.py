"""The vendor registry: one frozen row per upstream vendor, holding every vendor fact the proxy relies on.

A row says where the vendor's API lives (default base URL, hosts that identify it), which environment variable
holds its key, how its OpenAI-compatible endpoint differs from api.openai.com (OpenAIQuirks), its output cap,
which rate-limit headers it sends, per-model limits, how the price catalog (genai-prices) names it, and what it
supports. Adapters, config, costs and limits read these rows; no other module keeps a vendor table.

Standard library only: translate/ and routing/ read it too.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from enum import StrEnum
from urllib.parse import urlparse

CUSTOM = "custom"  # any OpenAI-compatible endpoint the registry does not know


class RateLimitDialect(StrEnum):
    """Which rate-limit response headers a vendor sends (PROTOCOLS.md §7)."""

    ANTHROPIC = "anthropic"  # anthropic-ratelimit-{requests,tokens,input-tokens}-{limit,remaining,reset}, RFC 3339
    OPENAI = "openai"  # x-ratelimit-{limit,remaining,reset}-{requests,tokens}, resets as Go durations (6m0s)
    CEREBRAS = "cerebras"  # x-ratelimit-{limit,remaining,reset}-{requests-day,tokens-minute}
    OPENROUTER = "openrouter"  # unsuffixed x-ratelimit-{limit,remaining,reset}, the reset in epoch milliseconds
    NONE = "none"  # no quota headers: only retry-after and the error body say anything
    UNKNOWN = "unknown"  # an endpoint we do not know: read whichever dialect is present


class Support(StrEnum):
    """Whether a vendor supports a capability. UNKNOWN until someone checks it against the vendor's API."""

    YES = "yes"
    NO = "no"
    UNKNOWN = "unknown"


class ReasoningParameter(StrEnum):
    """How an OpenAI-compatible vendor takes a thinking budget."""

    EFFORT = "effort"  # reasoning_effort: low / medium / high
    OPENROUTER = "openrouter"  # reasoning: {max_tokens}


@dataclass(frozen=True)
class OpenAIQuirks:
    """What one OpenAI-compatible vendor (or model family) does differently from api.openai.com defaults."""

    system_role: str = "system"  # "developer" for OpenAI reasoning models
    use_max_completion_tokens: bool = False  # send max_completion_tokens instead of the deprecated max_tokens
    default_max_output_tokens: int | None = None  # cap for max_tokens when the provider settings give none
    stream_include_usage: bool = True  # stream_options.include_usage is accepted (otherwise no usage in streams)
    usage_in_x_groq: bool = False  # Groq streams put the final usage in chunk["x_groq"]["usage"]
    reasoning_request: ReasoningParameter | None = None  # how thinking is asked for; None = not at all
    sampling_params: bool = True  # temperature/top_p/stop accepted (OpenAI reasoning models refuse them)
    parallel_tool_calls: bool = True  # the parallel_tool_calls field is accepted
    send_user: bool = True  # the `user` field is accepted
    gemini_schema: bool = False  # strip JSON-Schema keywords Gemini rejects
    # Model-id prefixes for which Anthropic `cache_control` marks are accepted on OpenAI content parts (OpenRouter
    # passes them to Anthropic and Gemini models); `cache_control` is this, resolved for one model.
    cache_control_models: tuple[str, ...] = ()
    cache_control: bool = False
    web_search_plugin: bool = False  # Anthropic's web_search tool maps to OpenRouter's `plugins: [{"id": "web"}]`
    max_thinking_budget: int | None = None  # the target model's largest reasoning budget (resolved per model)
    structured_outputs: bool = True  # False when the vendor's row says it has no JSON-schema output format
    structured_outputs_with_tools: bool = True  # resolved per model (ModelLimits)
    extra_headers: tuple[tuple[str, str], ...] = ()  # sent on every request (the user's configured headers win)

    @property
    def headers(self) -> dict[str, str]:
        return dict(self.extra_headers)


@dataclass(frozen=True)
class ModelLimits:
    """Limits of the models whose normalised id (see `normalise_model_id`) starts with `prefix`."""

    prefix: str
    output_cap: int | None = None  # the most output tokens one response may have
    max_thinking_budget: int | None = None  # the largest thinking budget the model accepts; None = bounded by output
    # Gemini 2.x cannot combine a response schema with function declarations (Gemini 3 can).
    structured_outputs_with_tools: bool = True
    prefill: Support | None = None  # continues a trailing assistant message; None = as the vendor's capabilities


@dataclass(frozen=True)
class Capabilities:
    prompt_caching: Support = Support.UNKNOWN
    prefill: Support = Support.UNKNOWN  # a trailing assistant message is continued, not answered
    structured_outputs: Support = Support.UNKNOWN  # a JSON-schema output format; NO = refused with a 400
    server_tools: Support = Support.UNKNOWN  # Anthropic server tools (web search, code execution) run upstream


@dataclass(frozen=True)
class Vendor:
    """Everything the proxy knows about one vendor."""

    name: str
    kind: str  # the provider kind (config.PROVIDER_KINDS) whose adapter speaks this vendor's native API
    base_url: str | None  # the default API root; `{region}` is filled from the provider's region
    api_key_env: str | None  # where its key usually lives; None = no key (cloud credentials, or a keyless server)
    hosts: tuple[str, ...] = ()  # hosts (and their subdomains) that identify it in an OpenAI-compatible base_url
    regional_base_urls: tuple[tuple[str, str], ...] = ()  # regions whose API root breaks the `{region}` pattern
    openai_base_url: str | None = None  # its Chat Completions root when that is not `base_url`
    openai_quirks: OpenAIQuirks | None = None  # None: not reachable through Chat Completions
    openai_reasoning_models: bool = False  # serves OpenAI's reasoning models (o3, gpt-5 ...) under their names
    output_cap: int | None = None  # max_tokens is clamped to this when the provider settings set no cap
    rate_limit_dialect: RateLimitDialect = RateLimitDialect.UNKNOWN
    models: tuple[ModelLimits, ...] = ()
    # The `publisher/` prefixes aggregators (OpenRouter, GitHub Models) put before this vendor's model ids: their
    # `google/gemini-2.5-flash` has the limits of this row's `gemini-2.5-flash`.
    publishers: tuple[str, ...] = ()
    price_provider_id: str | None = None  # its genai-prices provider id; None = let the catalog match any
    free: bool = False  # catalog prices do not apply (free within its rate limits)
    from_environment: bool = False  # enabled from `api_key_env` when there is no config file
    environment_models: tuple[tuple[str, str], ...] = ()  # tier -> model for a provider enabled that way
    capabilities: Capabilities = Capabilities()

    def base_url_for(self, region: str | None = None) -> str | None:
        """The API root for a region (the plain default when the vendor's URL is not regional)."""
        if self.base_url is None or "{region}" not in self.base_url:
            return self.base_url
        if region is None:
            raise ValueError(f"{self.name}'s API root depends on the region, and none was given")
        return dict(self.regional_base_urls).get(region) or self.base_url.format(region=region)

    @property
    def chat_completions_base_url(self) -> str | None:
        """Where its OpenAI-compatible API lives, for a kind "openai" provider that names no base_url."""
        if self.openai_base_url is not None:
            return self.openai_base_url
        return self.base_url if self.kind == "openai" else None


# --- per-model limits ----------------------------------------------------------------------------------------
# Anthropic's models overview. Extended thinking's budget_tokens must stay below max_tokens, so the output cap
# bounds it. The longest matching prefix wins (claude-opus-4-5 before claude-opus-4).
# Anthropic removed assistant prefill in the Claude 4.6 generation ("Prefilling assistant messages returns a 400
# error on Claude 4.6 models"); later generations are taken to follow it. A rescue never prefills them.
_NO_PREFILL = Support.NO
_CLAUDE_MODELS = (
    ModelLimits("claude-opus-4-6", prefill=_NO_PREFILL),
    ModelLimits("claude-sonnet-4-6", prefill=_NO_PREFILL),
    ModelLimits("claude-opus-4-7", prefill=_NO_PREFILL),
    ModelLimits("claude-opus-4-8", prefill=_NO_PREFILL),
    ModelLimits("claude-opus-5", prefill=_NO_PREFILL),
    ModelLimits("claude-sonnet-5", prefill=_NO_PREFILL),
    ModelLimits("claude-haiku-5", prefill=_NO_PREFILL),
    ModelLimits("claude-opus-4-5", output_cap=64000),
    ModelLimits("claude-opus-4-1", output_cap=32000),
    ModelLimits("claude-opus-4", output_cap=32000),
    ModelLimits("claude-sonnet-4-5", output_cap=64000),
    ModelLimits("claude-sonnet-4", output_cap=64000),
    ModelLimits("claude-haiku-4-5", output_cap=64000),
    ModelLimits("claude-3-7-sonnet", output_cap=64000),
    ModelLimits("claude-3-5-haiku", output_cap=8192),
)
# Gemini's output limit, on the native API and its OpenAI-compatible endpoint alike (named: translate/gemini.py
# needs it as a plain int).
GEMINI_OUTPUT_CAP = 65536
# Google's Gemini models page and thinking guide (thinkingBudget ranges).
_GEMINI_MODELS = (
    ModelLimits(
        "gemini-2.5-pro", output_cap=GEMINI_OUTPUT_CAP, max_thinking_budget=32768, structured_outputs_with_tools=False
    ),
    ModelLimits(
        "gemini-2.5-flash", output_cap=GEMINI_OUTPUT_CAP, max_thinking_budget=24576, structured_outputs_with_tools=False
    ),
    ModelLimits(
        "gemini-2.5-flash-lite",
        output_cap=GEMINI_OUTPUT_CAP,
        max_thinking_budget=24576,
        structured_outputs_with_tools=False,
    ),
)
# OpenAI's model pages.
_OPENAI_MODELS = (
    ModelLimits("gpt-5", output_cap=128000),
    ModelLimits("gpt-4.1", output_cap=32768),
)

_CLAUDE_CAPABILITIES = Capabilities(prompt_caching=Support.YES, prefill=Support.YES)

VENDORS: tuple[Vendor, ...] = (
    Vendor(
        name="anthropic",
        kind="anthropic",
        base_url="https://api.anthropic.com",
        api_key_env="ANTHROPIC_API_KEY",
        rate_limit_dialect=RateLimitDialect.ANTHROPIC,
        models=_CLAUDE_MODELS,
        publishers=("anthropic",),
        price_provider_id="anthropic",
        from_environment=True,
        capabilities=Capabilities(
            prompt_caching=Support.YES, prefill=Support.YES, structured_outputs=Support.YES, server_tools=Support.YES
        ),
    ),
    Vendor(
        name="openrouter",
        kind="openai",
        base_url="https://openrouter.ai/api/v1",
        api_key_env="OPENROUTER_API_KEY",
        hosts=("openrouter.ai",),
        # OpenRouter reserves credit for max_tokens up front: an uncapped 128k request fails with 402 on small
        # balances.
        openai_quirks=OpenAIQuirks(
            reasoning_request=ReasoningParameter.OPENROUTER,
            cache_control_models=("anthropic/", "google/"),
            web_search_plugin=True,
            extra_headers=(("X-Title", "ccm-tui"),),
        ),
        output_cap=32000,
        rate_limit_dialect=RateLimitDialect.OPENROUTER,
        # Caching: automatic for most models, explicit `cache_control` breakpoints for Anthropic and Gemini ones.
        # Server tools: only web search (the web plugin); the others are refused.
        capabilities=Capabilities(prompt_caching=Support.YES, structured_outputs=Support.YES),
        price_provider_id="openrouter",
        from_environment=True,
        environment_models=(
            ("haiku", "anthropic/claude-haiku-4.5"),
            ("sonnet", "anthropic/claude-sonnet-4.5"),
            ("opus", "anthropic/claude-opus-4.5"),
        ),
    ),
    Vendor(
        name="openai",
        kind="openai",
        base_url="https://api.openai.com/v1",
        api_key_env="OPENAI_API_KEY",
        hosts=("api.openai.com",),
        openai_quirks=OpenAIQuirks(use_max_completion_tokens=True, reasoning_request=ReasoningParameter.EFFORT),
        openai_reasoning_models=True,
        rate_limit_dialect=RateLimitDialect.OPENAI,
        models=_OPENAI_MODELS,
        publishers=("openai",),
        price_provider_id="openai",
        from_environment=True,
        environment_models=(("haiku", "gpt-5-mini"), ("sonnet", "gpt-5"), ("opus", "gpt-5"), ("default", "gpt-5")),
    ),
    Vendor(
        name="groq",
        kind="openai",
        base_url="https://api.groq.com/openai/v1",
        api_key_env="GROQ_API_KEY",
        hosts=("groq.com",),
        openai_quirks=OpenAIQuirks(use_max_completion_tokens=True, usage_in_x_groq=True),
        output_cap=32768,
        rate_limit_dialect=RateLimitDialect.OPENAI,
        price_provider_id="groq",
        from_environment=True,
        environment_models=(
            ("haiku", "llama-3.1-8b-instant"),
            ("sonnet", "openai/gpt-oss-120b"),
            ("default", "openai/gpt-oss-120b"),
        ),
    ),
    Vendor(
        name="cerebras",
        kind="openai",
        base_url="https://api.cerebras.ai/v1",
        api_key_env="CEREBRAS_API_KEY",
        hosts=("cerebras.ai",),
        openai_quirks=OpenAIQuirks(use_max_completion_tokens=True, parallel_tool_calls=False),
        # Cerebras reserves prompt + max_completion_tokens against the per-minute token bucket: keep the cap low.
        output_cap=8192,
        rate_limit_dialect=RateLimitDialect.CEREBRAS,
        price_provider_id="cerebras",
        from_environment=True,
        environment_models=(("haiku", "llama3.1-8b"), ("sonnet", "gpt-oss-120b"), ("default", "gpt-oss-120b")),
    ),
    Vendor(
        name="github",
        kind="openai",
        base_url="https://models.github.ai/inference",
        api_key_env="GITHUB_TOKEN",
        hosts=("models.github.ai", "models.inference.ai.azure.com"),
        openai_quirks=OpenAIQuirks(
            extra_headers=(("Accept", "application/vnd.github+json"), ("X-GitHub-Api-Version", "2022-11-28"))
        ),
        openai_reasoning_models=True,
        output_cap=4000,  # the free tiers' per-request output limit
        rate_limit_dialect=RateLimitDialect.OPENAI,
        free=True,
        from_environment=True,
        environment_models=(
            ("haiku", "openai/gpt-4.1-mini"),
            ("sonnet", "openai/gpt-4.1"),
            ("default", "openai/gpt-4.1"),
        ),
    ),
    Vendor(
        name="gemini",
        kind="gemini",
        base_url="https://generativelanguage.googleapis.com/v1beta",
        api_key_env="GEMINI_API_KEY",
        hosts=("generativelanguage.googleapis.com",),
        openai_base_url="https://generativelanguage.googleapis.com/v1beta/openai",
        openai_quirks=OpenAIQuirks(
            reasoning_request=ReasoningParameter.EFFORT, parallel_tool_calls=False, send_user=False, gemini_schema=True
        ),
        output_cap=GEMINI_OUTPUT_CAP,
        rate_limit_dialect=RateLimitDialect.NONE,
        models=_GEMINI_MODELS,
        publishers=("google",),
        price_provider_id="google",
        from_environment=True,
        environment_models=(("haiku", "gemini-2.5-flash"), ("sonnet", "gemini-2.5-pro"), ("opus", "gemini-2.5-pro")),
        # responseSchema (native) / response_format (OpenAI endpoint); web search, URL fetch and code execution map
        # to Google Search grounding, URL context and code execution.
        capabilities=Capabilities(structured_outputs=Support.YES),
    ),
    Vendor(
        name="bedrock",
        kind="bedrock",
        base_url="https://bedrock-runtime.{region}.amazonaws.com",
        api_key_env="AWS_BEARER_TOKEN_BEDROCK",  # a Bedrock API key; else SigV4 from botocore's credential chain
        rate_limit_dialect=RateLimitDialect.NONE,
        models=_CLAUDE_MODELS,
        price_provider_id="aws",
        capabilities=_CLAUDE_CAPABILITIES,
    ),
    Vendor(
        name="vertex",
        kind="vertex",
        base_url="https://{region}-aiplatform.googleapis.com/v1",
        api_key_env=None,  # OAuth tokens from google-auth
        regional_base_urls=(
            ("global", "https://aiplatform.googleapis.com/v1"),
            ("us", "https://aiplatform.us.rep.googleapis.com/v1"),
            ("eu", "https://aiplatform.eu.rep.googleapis.com/v1"),
        ),
        rate_limit_dialect=RateLimitDialect.NONE,
        models=_CLAUDE_MODELS,
        price_provider_id="google",
        capabilities=_CLAUDE_CAPABILITIES,
    ),
    Vendor(
        name=CUSTOM,
        kind="openai",
        base_url=None,
        api_key_env=None,
        openai_quirks=OpenAIQuirks(),
        openai_reasoning_models=True,
    ),
)

_BY_NAME = {vendor.name: vendor for vendor in VENDORS}


def vendor(name: str) -> Vendor | None:
    """The registry row for a vendor name, or None for a name the registry does not know."""
    return _BY_NAME.get(name)


def vendor_or_custom(name: str) -> Vendor:
    """The row for `name`; an unknown name is an OpenAI-compatible endpoint like any custom one."""
    return _BY_NAME.get(name) or _BY_NAME[CUSTOM]


def vendor_for_url(base_url: str | None) -> str:
    """The vendor an OpenAI-compatible base_url belongs to, by its host; "custom" when no row claims it."""
    host = urlparse(base_url or "").hostname or ""
    for row in VENDORS:
        if any(host == marker or host.endswith("." + marker) for marker in row.hosts):
            return row.name
    return CUSTOM


def environment_vendors() -> tuple[Vendor, ...]:
    """The vendors enabled from their key variable when there is no config file, in routing order."""
    return tuple(row for row in VENDORS if row.from_environment)


# OpenAI reasoning models (o1, o3, o4-mini, gpt-5 ...) want the developer role and max_completion_tokens, and
# refuse temperature / top_p / stop. GitHub Models and custom gateways serve them under `openai/o3` and the like.
_REASONING_MODEL = re.compile(r"^(o\d|gpt-5)")


def openai_quirks(vendor_name: str, model: str) -> OpenAIQuirks:
    """The Chat Completions quirks for one vendor and model: the vendor's row with its output cap, adjusted for
    OpenAI reasoning models. A vendor without a Chat Completions row (or unknown) gets the custom row's quirks;
    only vendors known to serve OpenAI's reasoning models get the reasoning adjustment."""
    row = vendor(vendor_name)
    source = row if row is not None and row.openai_quirks is not None else _BY_NAME[CUSTOM]
    quirks = source.openai_quirks or OpenAIQuirks()
    limits = model_limits(source.name, model)
    caps = [cap for cap in (source.output_cap, limits.output_cap if limits else None) if cap is not None]
    if caps:
        quirks = dataclasses.replace(quirks, default_max_output_tokens=min(caps))
    if limits is not None:
        quirks = dataclasses.replace(
            quirks,
            max_thinking_budget=limits.max_thinking_budget,
            structured_outputs_with_tools=limits.structured_outputs_with_tools,
        )
    if source.capabilities.structured_outputs is Support.NO:
        quirks = dataclasses.replace(quirks, structured_outputs=False)
    if any(model.lower().startswith(prefix) for prefix in quirks.cache_control_models):
        quirks = dataclasses.replace(quirks, cache_control=True)
    reasoning = row is not None and row.openai_reasoning_models
    if reasoning and _REASONING_MODEL.match(model.rsplit("/", 1)[-1].lower()):
        quirks = dataclasses.replace(
            quirks, system_role="developer", use_max_completion_tokens=True, sampling_params=False
        )
    return quirks


# Cross-region inference profile prefixes (Bedrock), the `anthropic.` publisher prefix and `-v1:0` version
# suffix (Bedrock), `@date` or `@region` suffixes (Vertex, variants), `models/` and `vendor/` paths.
_MODEL_DECORATIONS = re.compile(r"^(?:(?:us|us-gov|eu|apac|jp|au|ca|global)\.)?(?:anthropic\.)?")


def normalise_model_id(model: str) -> str:
    """A model id as the per-model limits spell it: `us.anthropic.claude-opus-4-1-20250805-v1:0@us-east-1`,
    `claude-opus-4-1@20250805` and `anthropic/claude-opus-4.1` all become `claude-opus-4-1...`."""
    name = model.rsplit("/", 1)[-1].split("@", 1)[0].lower()
    return _MODEL_DECORATIONS.sub("", name).replace(".", "-")


# After a family prefix, `-<1 or 2 digits>` is another minor version (claude-opus-4 vs claude-opus-4-6), not a
# snapshot date or a variant of the same model.
_MINOR_VERSION = re.compile(r"^-\d{1,2}(?!\d)")


def model_limits(vendor_name: str, model: str) -> ModelLimits | None:
    """The limits of `model` as this vendor serves it (the longest matching family), None when unknown.

    A `publisher/model` id the vendor's own rows do not know (an aggregator's `google/gemini-2.5-flash`) gets
    the limits of the vendor that publishes it."""
    row = vendor(vendor_name)
    if row is None:
        return None
    own = _matching_limits(row, model)
    publisher, slash, _ = model.lower().partition("/")
    if own is not None or not slash:
        return own
    owner = next((other for other in VENDORS if publisher in other.publishers), None)
    return _matching_limits(owner, model) if owner is not None and owner is not row else None


def _matching_limits(row: Vendor, model: str) -> ModelLimits | None:
    name = normalise_model_id(model)
    matches = [
        limits
        for limits in row.models
        if name.startswith(prefix := normalise_model_id(limits.prefix))
        and not _MINOR_VERSION.match(name[len(prefix) :])
    ]
    return max(matches, key=lambda limits: len(limits.prefix), default=None)
