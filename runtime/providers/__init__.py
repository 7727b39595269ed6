"""LLM providers behind one interface (`Provider`), and the registry that builds
them from configuration (docs/providers/README.md). May import runtime.secrets only."""

from runtime.providers.anthropic import AnthropicProvider
from runtime.providers.base import (
    INVALID_ARGUMENTS_KEY,
    STOP_END_TURN,
    STOP_MAX_TOKENS,
    STOP_TOOL_USE,
    ChatMessage,
    Done,
    Provider,
    ProviderAuthError,
    ProviderError,
    ProviderEvent,
    ProviderStreamBroken,
    Role,
    TextDelta,
    ToolCall,
    ToolCallEvent,
    ToolSpec,
    UnknownModelError,
    Usage,
)
from runtime.providers.echo import EchoProvider, EchoRequest, ScriptedTurn
from runtime.providers.http import HttpProvider, Timeouts
from runtime.providers.openai_compat import OpenAICompatProvider, parse_tool_arguments
from runtime.providers.registry import (
    PROVIDER_KINDS,
    ProviderConfig,
    ProviderConfigError,
    ProviderKind,
    ProviderRegistry,
    build_provider,
    open_provider_registry,
)
from runtime.providers.retry import RetryPolicy, parse_retry_after, retrying

__all__ = [
    "INVALID_ARGUMENTS_KEY",
    "PROVIDER_KINDS",
    "STOP_END_TURN",
    "STOP_MAX_TOKENS",
    "STOP_TOOL_USE",
    "AnthropicProvider",
    "ChatMessage",
    "Done",
    "EchoProvider",
    "EchoRequest",
    "HttpProvider",
    "OpenAICompatProvider",
    "Provider",
    "ProviderAuthError",
    "ProviderConfig",
    "ProviderConfigError",
    "ProviderError",
    "ProviderEvent",
    "ProviderKind",
    "ProviderRegistry",
    "ProviderStreamBroken",
    "RetryPolicy",
    "Role",
    "ScriptedTurn",
    "TextDelta",
    "Timeouts",
    "ToolCall",
    "ToolCallEvent",
    "ToolSpec",
    "UnknownModelError",
    "Usage",
    "build_provider",
    "open_provider_registry",
    "parse_retry_after",
    "parse_tool_arguments",
    "retrying",
]
