"""Where a service listens is separate from where others dial it (containers listen on
every interface and are dialled by name); unset, it listens where it is dialled."""

from __future__ import annotations

import pytest

from clawgate.common.config import load_config
from clawgate.common.services import BY_NAME, SERVICES
from clawgate.deploy.probe import main as probe_main
from clawgate.deploy.probe import service_port


def test_listen_and_dial_addresses_come_from_their_own_variables() -> None:
    env = {"CLAWGATE_CHAT_ADDR": "chat:50051", "CLAWGATE_CHAT_LISTEN": "[::]:50051"}
    config = load_config(env=env)
    assert config.services.chat == "chat:50051"
    assert config.listen.chat == "[::]:50051"


def test_a_service_listens_where_it_is_dialled_when_no_listen_address_is_set() -> None:
    config = load_config(env={"CLAWGATE_AGENTS_ADDR": "127.0.0.1:7000"})
    assert config.listen.agents == "127.0.0.1:7000"
    assert dict(config.listen) == dict(config.services)


def test_the_probe_asks_the_port_the_service_listens_on(monkeypatch: pytest.MonkeyPatch) -> None:
    chat = BY_NAME["chat"]
    assert service_port(chat) == chat.default_port
    monkeypatch.setenv(chat.listen_env, "[::]:6001")
    assert service_port(chat) == 6001


def test_the_probe_reports_a_service_that_is_not_there(monkeypatch: pytest.MonkeyPatch) -> None:
    from clawgate.launcher.processes import free_ports

    (port,) = free_ports(1)
    monkeypatch.setenv(SERVICES[0].listen_env, f"127.0.0.1:{port}")
    assert probe_main([SERVICES[0].name]) == 1
    assert probe_main([f"http://127.0.0.1:{port}/ready"]) == 1
    assert probe_main(["nonsense"]) == 2
