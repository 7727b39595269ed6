"""Worker configuration for LLM sessions: flags and a TOML file, to an agent.

``python -m runtime worker --provider openai --model M --base-url U --approve safe
--workspace DIR`` and the same through ``--config worker.toml``::

    [agent]                       # what the worker runs
    provider = "local"            # a [[providers]] name, or a kind (openai, anthropic, echo)
    model = "llama3.1:8b"
    approve = "safe"              # all | safe | none | ask
    workspace = "/var/lib/trio-a2a/work"
    system_prompt = "..."         # optional
    max_steps = 20                # optional

    [[providers]]                 # as many as you like; all list their models at registration
    name = "local"
    kind = "openai"               # openai | anthropic | echo
    base_url = "http://127.0.0.1:11434/v1"
    api_key_secret = "OPENAI_API_KEY"   # resolved through [secrets]; never put keys here

    [secrets]                     # optional: order = ["vault", "file", "env"], file = ...
    order = ["env"]

Flags win over the file. A worker with no provider configured runs its `--agent`
(echo by default) as before.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import tomllib
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

from actors.agent import AgentSpec
from actors.approval import ApprovalPolicy
from actors.worker import ListModels
from runtime.agents.llm import DEFAULT_SYSTEM_PROMPT, LlmAgentConfig, llm_agent
from runtime.providers.registry import (
    PROVIDER_KINDS,
    ProviderConfig,
    ProviderConfigError,
    open_provider_registry,
)
from runtime.secrets import SecretRedactionFilter, SecretsConfig, SecretStore
from runtime.tools.registry import ToolRegistry
from runtime.tools.workspace import WorkspaceCleanup

__all__ = ["ConfigError", "LlmSettings", "load_toml", "open_llm_agent", "settings_from"]

_DEFAULT_KEY_NAMES = {"openai": "OPENAI_API_KEY", "anthropic": "ANTHROPIC_API_KEY"}
_AGENT_KEYS = {"provider", "model", "approve", "workspace", "workspace_cleanup",
               "system_prompt", "max_steps"}


class ConfigError(ValueError):
    """The configuration is wrong; the message names the file and the field."""


@attrs.frozen
class LlmSettings:
    providers: tuple[ProviderConfig, ...]
    provider: str
    """The name of the provider the agent uses (one of `providers`)."""
    model: str
    approval: ApprovalPolicy = ApprovalPolicy.SAFE
    workspace: Path = Path("workspaces")
    workspace_cleanup: WorkspaceCleanup = WorkspaceCleanup.ALWAYS
    """What becomes of a task's workspace when it ends: always removed, kept when
    the task failed or was canceled (keep-failed), or never removed."""
    system_prompt: str = DEFAULT_SYSTEM_PROMPT
    max_steps: int = 20
    secrets: SecretsConfig = attrs.field(factory=SecretsConfig.from_env)


def load_toml(path: str | Path) -> dict[str, Any]:
    """The parsed file; ConfigError naming the file for a missing or malformed one."""
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such configuration file") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None


def settings_from(args: argparse.Namespace, file: Mapping[str, Any] | None = None,
                  *, where: str = "config") -> LlmSettings | None:
    """LLM settings from flags over the file's tables; None if no provider is set."""
    file = file or {}
    agent = file.get("agent", {})
    if not isinstance(agent, Mapping):
        raise ConfigError(f"{where}: [agent] must be a table")
    unknown = sorted(set(agent) - _AGENT_KEYS)
    if unknown:
        raise ConfigError(f"{where}: [agent] has unknown key(s) {', '.join(unknown)}; known: "
                          f"{', '.join(sorted(_AGENT_KEYS))}")
    try:
        configs = [ProviderConfig.from_dict(p) for p in file.get("providers", [])]
    except ProviderConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    provider = getattr(args, "provider", None) or agent.get("provider")
    if not provider:
        if configs and (getattr(args, "model", None) or agent.get("model")):
            provider = configs[0].name
        else:
            return None
    names = [c.name for c in configs]
    if provider not in names:
        if provider not in PROVIDER_KINDS:
            raise ConfigError(f"--provider {provider!r}: not a configured provider "
                              f"({', '.join(names) or 'none configured'}) nor a kind "
                              f"({', '.join(PROVIDER_KINDS)})")
        named = getattr(args, "api_key_secret", None)
        base_url = getattr(args, "base_url", None)
        configs.append(ProviderConfig(name=provider, kind=provider,  # type: ignore[arg-type]
                                      base_url=base_url,
                                      api_key_secret=named or _DEFAULT_KEY_NAMES.get(provider),
                                      # a local OpenAI-compatible server (Ollama, vLLM, ...)
                                      # needs no key: the default name may be unset
                                      api_key_optional=provider == "openai" and bool(base_url)
                                      and not named))
    elif getattr(args, "base_url", None):
        i = names.index(provider)
        configs[i] = attrs.evolve(configs[i], base_url=args.base_url)
    model = getattr(args, "model", None) or agent.get("model")
    if not model:
        if provider == "echo" or dict((c.name, c.kind) for c in configs).get(provider) == "echo":
            model = "echo"
        else:
            raise ConfigError(f"--model is required with provider {provider!r} "
                              "(or [agent] model in the file)")
    try:
        approval = ApprovalPolicy.parse(getattr(args, "approve", None)
                                        or agent.get("approve", "safe"))
    except ValueError as exc:
        raise ConfigError(f"--approve: {exc}") from None
    max_steps = getattr(args, "max_steps", None) or agent.get("max_steps", 20)
    if not isinstance(max_steps, int) or max_steps < 1:
        raise ConfigError(f"max_steps must be a positive integer, not {max_steps!r}")
    try:
        cleanup = WorkspaceCleanup.parse(getattr(args, "workspace_cleanup", None)
                                         or agent.get("workspace_cleanup", "always"))
    except (ValueError, AttributeError) as exc:
        raise ConfigError(f"--workspace-cleanup: {exc}") from None
    try:
        secrets = SecretsConfig.from_mapping(file.get("secrets", {}))
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{where}: [secrets]: {exc}") from None
    return LlmSettings(
        providers=tuple(configs), provider=str(provider), model=str(model), approval=approval,
        workspace=Path(getattr(args, "workspace", None) or agent.get("workspace")
                       or "workspaces"), workspace_cleanup=cleanup,
        system_prompt=getattr(args, "system_prompt", None) or agent.get("system_prompt")
        or DEFAULT_SYSTEM_PROMPT,
        max_steps=max_steps, secrets=secrets)


@contextlib.asynccontextmanager
async def open_llm_agent(settings: LlmSettings, *,
                         tools: ToolRegistry | None = None
                         ) -> AsyncIterator[tuple[AgentSpec, ListModels]]:
    """The LLM agent the settings describe, and the model lister for registration."""
    store = SecretStore.from_config(settings.secrets)
    # Whatever logs through the root handlers (ours, httpx's, a provider's error text)
    # has the keys this store resolved scrubbed out.
    scrub = SecretRedactionFilter(store.known_secrets)
    handlers = list(logging.getLogger().handlers)
    for handler in handlers:
        handler.addFilter(scrub)
    async with contextlib.AsyncExitStack() as stack:
        stack.callback(lambda: [h.removeFilter(scrub) for h in handlers])
        registry = await stack.enter_async_context(
            open_provider_registry(settings.providers, secrets=store))
        name = settings.provider

        async def provider() -> Any:
            return await registry.get(name)

        config = LlmAgentConfig(provider=provider, model=settings.model,
                                workspace_dir=settings.workspace,
                                tools=tools if tools is not None else ToolRegistry(),
                                approval=settings.approval,
                                system_prompt=settings.system_prompt,
                                max_steps=settings.max_steps,
                                cleanup=settings.workspace_cleanup)
        yield llm_agent(config), registry.list_models


def format_models(models: Mapping[str, Sequence[str]], names: Sequence[str]) -> str:
    """`python -m runtime models` output: each provider and its models."""
    lines = []
    for name in names:
        listed = models.get(name)
        if listed is None:
            lines.append(f"{name}: (unavailable: see the warning above)")
        else:
            lines.append(f"{name}: {', '.join(listed) if listed else '(no models)'}")
    return "\n".join(lines)
