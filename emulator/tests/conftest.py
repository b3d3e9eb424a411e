"""Shared fixtures: the minimal scenario in-process with a frozen clock, tokens, and small helpers."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from anaf_emulator import create_app

A, B, C, D = "1000017", "2000023", "3000030", "4000046"
REDIRECT = "https://client.example/cb"


class Emu:
    """A test handle: the ASGI client plus shortcuts to state, clock and tokens."""

    def __init__(self, app: Any, client: httpx.AsyncClient) -> None:
        self.app = app
        self.client = client
        self.state = app.state.emulator

    @property
    def both_app(self) -> Any:
        return self.state.scenario.applications[0]

    @property
    def efactura_app(self) -> Any:
        return self.state.scenario.applications[1]

    def advance(self, seconds: float) -> None:
        self.state.clock.advance(seconds)

    async def tokens(self, cert: str = "acc", app: Any = None) -> dict[str, Any]:
        app = app or self.both_app
        r = await self.client.post("/__admin/tokens", json={"client_id": app.client_id, "certificate": cert})
        assert r.status_code == 200, r.text
        return r.json()

    async def bearer(self, cert: str = "acc", app: Any = None) -> dict[str, str]:
        return {"Authorization": "Bearer " + (await self.tokens(cert, app))["access_token"]}


@pytest.fixture
async def emu() -> Any:
    app = create_app("minimal.json")
    app.state.emulator.clock.freeze(True)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://emulator") as client:
        yield Emu(app, client)


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RunningEmulator:
    """The real `python -m anaf_emulator` process on a free loopback port."""

    def __init__(self, *args: str) -> None:
        import subprocess
        import sys
        import time

        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "anaf_emulator", "--port", str(self.port), *args],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.base}/__admin/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.1)
            if self.proc.poll() is not None:
                break
        self.stop()
        raise RuntimeError(f"emulator did not start: {self.proc.stderr.read().decode() if self.proc.stderr else ''}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)


@pytest.fixture(scope="module")
def running_minimal() -> Any:
    emu = RunningEmulator("--scenario", "minimal.json", "--clock-start", "now",
                          "--switch", "processing_delay_seconds=0.3", "--switch", "public_rate_limit=ignore")
    yield emu
    emu.stop()
