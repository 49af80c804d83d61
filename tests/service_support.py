"""Shared set-up for the service tests: a data directory, principals and an in-process client."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from ledger.config import init_data_dir
from ledger.principals import PrincipalStore
from ledger.service import create_app
from ledger.service.settings import Settings


@dataclass
class Service:
    data: Path
    client: TestClient
    tokens: dict[str, str]
    store: PrincipalStore

    def h(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}"}

    def head(self) -> int:
        return self.client.app.state.memledger.ledger.head()  # type: ignore[attr-defined]

    def events(self, start: int = 0) -> list[Any]:
        return list(self.client.app.state.memledger.ledger.events(start))  # type: ignore[attr-defined]

    def denials(self, start: int = 0) -> list[Any]:
        return [e for e in self.events(start) if e.type == "access.denied"]


def make_service(
    tmp_path: Path,
    settings: Settings | None = None,
    names: tuple[str, ...] = ("alice", "bob", "carol", "dave"),
    config: str | None = None,
) -> Service:
    data = tmp_path / "data"
    init_data_dir(data)
    if config is not None:
        (data / "memledger.toml").write_text(config)
    store = PrincipalStore(data)
    tokens = {n: store.create(n)[1] for n in names}
    tokens["root"] = store.create("root", admin=True)[1]
    client = TestClient(create_app(data, settings=settings), raise_server_exceptions=False)
    return Service(data, client, tokens, store)
