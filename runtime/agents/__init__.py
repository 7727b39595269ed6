"""Built-in agents."""

from runtime.agents.echo import echo_agent

__all__ = ["echo_agent"]
