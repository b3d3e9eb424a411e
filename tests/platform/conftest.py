"""Fixtures of the platform tests: the nginx binary (installed from Debian like ./dev does)."""
from __future__ import annotations

import os
import shutil
import subprocess

import pytest


@pytest.fixture(scope="session")
def nginx_bin() -> str:
    path = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)
    if path is None and os.geteuid() == 0:
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], check=False, env=env, capture_output=True)
        for pkg in ("nginx-light", "nginx"):
            if subprocess.run(["apt-get", "install", "-y", "-qq", pkg], env=env, capture_output=True).returncode == 0:
                break
        path = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)
    if path is None:
        pytest.fail("nginx is missing: apt-get install -y nginx-light (./dev up installs it)")
    return path
