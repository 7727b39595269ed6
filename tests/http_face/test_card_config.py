"""The card says what this server serves: configured fields, and the skills of the agents
whose workers are connected (not always the built-in echo agent's)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import httpx
import pytest
import trio

from actors.agent import AgentSpec, Emitter, TaskContext
from protocol.models import AgentExtension, AgentProvider, AgentSkill
from runtime.http.card import CardSettings
from runtime.http.card_file import CardFileError, load_card_settings
from runtime.server import ServerConfig, open_server
from runtime.worker import open_worker

TIMEOUT = 15
CARD = "/.well-known/agent-card.json"

CARD_TOML = """
name = "Research desk"
description = "Answers research questions with sources."
version = "2.1.0"
documentationUrl = "https://example.com/docs"
provider = { organization = "Example Corp", url = "https://example.com" }

[[skills]]
id = "triage"
name = "Triage"
description = "Routes a question to the right desk"
tags = ["routing"]

[[extensions]]
uri = "https://example.com/ext/citations/v1"
description = "Answers carry citations"
"""


async def _research(ctx: TaskContext, emit: Emitter) -> None:
    await emit.working("looking it up")
    await emit.complete(f"sources for {ctx.text}")


RESEARCH = AgentSpec(name="research", run=_research, description="Finds sources",
                     skills=[AgentSkill(id="research", name="Research",
                                        description="Finds and summarises sources",
                                        tags=["research"])])


def test_card_file_in_toml_and_json(tmp_path: Path) -> None:
    toml = tmp_path / "card.toml"
    toml.write_text(CARD_TOML)
    settings = load_card_settings(toml)
    assert settings.name == "Research desk"
    assert settings.provider == AgentProvider(organization="Example Corp",
                                              url="https://example.com")
    assert [s.id for s in settings.skills] == ["triage"]
    assert settings.extensions == (AgentExtension(uri="https://example.com/ext/citations/v1",
                                                  description="Answers carry citations"),)
    as_json = tmp_path / "card.json"
    as_json.write_text(json.dumps({"name": "J", "documentation_url": "https://x/docs"}))
    assert load_card_settings(as_json) == CardSettings(name="J",
                                                       documentation_url="https://x/docs")


@pytest.mark.parametrize(("text", "message"), [
    ('name = "x"\ncolour = "red"\n', "unknown field(s) colour"),
    ('[[skills]]\nid = "a"\nname = "A"\ntags = []\n', "skills[0].description"),
    ('name = ""\n', "name must be a non-empty string"),
    ("name = \n", "not valid TOML"),
    ('[[skills]]\nid = "a"\nname = "A"\ndescription = "d"\ntags = []\n'
     '[[skills]]\nid = "a"\nname = "B"\ndescription = "d"\ntags = []\n', "a given twice"),
])
def test_card_file_mistakes_name_the_file_and_field(tmp_path: Path, text: str,
                                                    message: str) -> None:
    path = tmp_path / "card.toml"
    path.write_text(text)
    with pytest.raises(CardFileError) as err:
        load_card_settings(path)
    assert str(err.value).startswith(f"card file {path}: ")
    assert message in str(err.value)


async def test_card_lists_configured_fields_and_connected_workers_skills(tmp_path: Path) -> None:
    toml = tmp_path / "card.toml"
    toml.write_text(CARD_TOML)
    config = ServerConfig(port=0, store="memory", local_workers=0,
                          card=load_card_settings(toml))
    async with open_server(config) as srv, httpx.AsyncClient(base_url=srv.url) as http:
        with trio.fail_after(TIMEOUT):
            alone = await http.get(CARD)
            async with open_worker(srv.url, token=None, agent=RESEARCH) as worker:
                await worker.wait_registered()
                joined = await http.get(CARD)
                revalidated = await http.get(CARD, headers={"If-None-Match": alone.headers["etag"]})
            while True:  # the server notices the worker's link closing
                left = await http.get(CARD)
                if left.headers["etag"] == alone.headers["etag"]:
                    break
                await trio.sleep(0.05)
    card = alone.json()
    assert card["name"] == "Research desk"
    assert card["description"] == "Answers research questions with sources."
    assert card["version"] == "2.1.0"
    assert card["documentationUrl"] == "https://example.com/docs"
    assert card["provider"] == {"organization": "Example Corp", "url": "https://example.com"}
    assert card["capabilities"]["extensions"] == [{
        "uri": "https://example.com/ext/citations/v1", "description": "Answers carry citations"}]
    assert [s["id"] for s in card["skills"]] == ["triage"]
    assert "echo" not in json.dumps(card).lower()
    assert [s["id"] for s in joined.json()["skills"]] == ["triage", "research"]
    assert joined.headers["etag"] != alone.headers["etag"]
    assert revalidated.status_code == 200  # the old ETag no longer matches
    assert [s["id"] for s in left.json()["skills"]] == ["triage"]


async def test_without_configuration_the_card_names_the_server_not_echo() -> None:
    async with open_server(ServerConfig(port=0, store="memory", local_workers=0)) as srv:
        async with httpx.AsyncClient(base_url=srv.url) as http:
            card = (await http.get(CARD)).json()
    assert card["name"] == "trio-a2a"
    assert "Not an LLM" not in card["description"] and card["skills"] == []


async def test_embedded_agent_still_describes_a_default_server() -> None:
    async with open_server(ServerConfig(port=0, store="memory")) as srv:
        async with httpx.AsyncClient(base_url=srv.url) as http:
            with trio.fail_after(TIMEOUT):
                await srv.workers[0].wait_registered()  # it registers just after the start
                card = (await http.get(CARD)).json()
    assert card["name"] == "echo" and [s["id"] for s in card["skills"]] == ["echo"]


async def test_cli_card_flags_and_a_bad_card_file(tmp_path: Path) -> None:
    bad = tmp_path / "card.toml"
    bad.write_text('[[skills]]\nid = "a"\n')
    proc = await trio.run_process(
        [sys.executable, "-m", "runtime", "server", "--port", "0", "--store", "memory",
         "--card-file", str(bad)], capture_stdout=True, capture_stderr=True, check=False)
    err = proc.stderr.decode()
    assert proc.returncode == 2 and "Traceback" not in err
    assert f"--card-file: card file {bad}: skills[0].name" in err
