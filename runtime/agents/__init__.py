"""Built-in agents (echo, LLM, A2A relay), loading agents by name, the LLM worker's config.

May import actors/, protocol/, runtime.providers, .tools, .secrets and .client (the relay).
"""

from runtime.agents.echo import echo_agent

__all__ = ["echo_agent"]
