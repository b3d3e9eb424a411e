"""Acceptance: the third-party anafpy 0.13.3 client (PyPI, Python >= 3.12) against the real emulator process.

anafpy requires Python >= 3.12 while the project runs 3.11, so the test builds (once, cached under
~/.cache/spvhub) a separate virtualenv with `pip install anafpy==0.13.3` and runs tests/anafpy_client.py in it.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
from pathlib import Path

import httpx
from conftest import A

ANAFPY = "anafpy==0.13.3"
CACHE = Path(os.environ.get("SPVHUB_CACHE", Path.home() / ".cache" / "spvhub"))
VENV = CACHE / "anafpy-venv-0.13.3"


def _python312() -> str:
    """A Python >= 3.12 that really runs: real pyenv installs first (a pyenv *shim* for a version that is not
    active exits 127), then whatever is on PATH."""
    candidates = sorted(glob.glob(str(Path.home() / ".pyenv/versions/3.1[2-9]*/bin/python")), reverse=True)
    candidates += sorted(glob.glob("/root/.pyenv/versions/3.1[2-9]*/bin/python"), reverse=True)
    candidates += [shutil.which(n) for n in ("python3.13", "python3.12")]
    for c in candidates:
        probe = [c, "-c", "import sys, venv; assert sys.version_info >= (3, 12)"] if c else None
        if probe and os.path.exists(probe[0]) and subprocess.run(probe, check=False, capture_output=True).returncode == 0:
            return probe[0]
    raise AssertionError("anafpy needs Python >= 3.12: none found (python3.12 on PATH or a pyenv 3.12/3.13)")


def anafpy_python() -> str:
    python = VENV / "bin" / "python"
    if python.exists():
        ok = subprocess.run([str(python), "-c", "import anafpy, httpx2"], check=False, capture_output=True)
        if ok.returncode == 0:
            return str(python)
    subprocess.run([_python312(), "-m", "venv", "--clear", str(VENV)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--cache-dir", str(CACHE / "pip"), ANAFPY], check=True)
    return str(python)


def test_anafpy_authenticates_lists_downloads_uploads(running_minimal):
    base = running_minimal.base
    scenario = httpx.get(f"{base}/__admin/scenario").json()
    app = scenario["applications"][0]
    cert = next(c for c in scenario["certificates"] if c["id"] == "acc")
    script = Path(__file__).with_name("anafpy_client.py")
    out = subprocess.run(
        [anafpy_python(), str(script), base, app["client_id"], app["client_secret"], "https://localhost:9002/callback",
         "acc", cert["pin"], A],
        check=False, capture_output=True, text=True, timeout=120,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    summary = json.loads(out.stdout.strip().splitlines()[-1])
    assert summary["token_lifetime_days"] == 90
    assert summary["listed"] >= 1 and "FACTURA TRIMISA" in summary["types"]
    assert summary["content_root"] in ("Invoice", "CreditNote")
    assert summary["has_signature"] and summary["signature_valid"] is True
    assert summary["upload_accepted"] and summary["upload_id"]
    assert summary["final_state"] == "ok" and summary["final_ok"] and summary["download_id_from_status"]
    assert summary["uploaded_downloaded"]
    counters = httpx.get(f"{base}/__admin/counters").json()
    assert counters["oauth"]["authorization_code"] == 1 and counters["oauth"]["refresh_token"] == 1
    assert counters["endpoints"]["POST /FCTEL/rest/upload"] == 2
    assert counters["messages"][summary["downloaded_id"]]["descarcare"] == 1
    assert counters["messages"][summary["download_id_from_status"]]["descarcare"] == 1
