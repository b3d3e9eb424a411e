"""The chaos run's own PostgreSQL, Kafka and MinIO: the same binaries and settings `./dev infra` uses, on free
ports with a throwaway data directory, so the run may stop and restart them without touching the shared stack."""
from __future__ import annotations

import asyncio
import base64
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from spvhub_devtools.testing import ROOT, STACK

PGBIN = Path("/usr/lib/postgresql/15/bin")
CACHE = Path(os.environ.get("SPVHUB_CACHE", Path.home() / ".cache" / "spvhub"))
KAFKA_LIBS = CACHE / f"kafka-{STACK['SPVHUB_KAFKA_VERSION']}" / "libs"
MINIO_BIN = CACHE / f"minio-{STACK['SPVHUB_MINIO_VERSION']}" / "bin" / "minio"
SHARED_PORTS = {int(STACK[k]) for k in ("SPVHUB_PG_PORT", "SPVHUB_KAFKA_PORT", "SPVHUB_KAFKA_CONTROLLER_PORT",
                                        "SPVHUB_MINIO_PORT", "SPVHUB_MINIO_CONSOLE_PORT")}


def free_port() -> int:
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port not in SHARED_PORTS:  # never, whatever the kernel hands out, one of the shared stack's ports
            return port


def port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def wait_until(what: str, fn, timeout: float) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if fn():
                return
        except Exception:  # noqa: BLE001 - not up yet
            pass
        time.sleep(0.3)
    raise RuntimeError(f"{what} not ready within {timeout:g}s")


@dataclass
class ChaosInfra:
    """PostgreSQL, Kafka (KRaft) and MinIO as child processes of this run; `restart_*` keep their data."""

    root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="spvhub-chaos-", dir="/tmp")))
    pg_port: int = field(default_factory=free_port)
    kafka_port: int = field(default_factory=free_port)
    controller_port: int = field(default_factory=free_port)
    minio_port: int = field(default_factory=free_port)
    minio_console_port: int = field(default_factory=free_port)
    minio_user: str = "spvhub-chaos"
    minio_password: str = "spvhub-chaos-secret"
    kafka: subprocess.Popen[bytes] | None = None
    minio: subprocess.Popen[bytes] | None = None

    def __post_init__(self) -> None:
        missing = [str(p) for p in (PGBIN / "initdb", KAFKA_LIBS / ".complete", MINIO_BIN) if not p.exists()]
        if missing:
            raise RuntimeError(f"missing {missing}: run `./dev install` (or `./dev infra`) once on this machine")
        os.chmod(self.root, 0o755)  # the postgres user must traverse it
        (self.root / "logs").mkdir()

    # -- PostgreSQL -------------------------------------------------------------------------------------
    def _pg(self, *args: str) -> None:
        subprocess.run(["runuser", "-u", "postgres", "--", *args], check=True, capture_output=True, timeout=60)

    def start_postgres(self) -> None:
        data, run = self.root / "pg" / "data", self.root / "pg" / "run"
        if not (data / "PG_VERSION").exists():
            for d in (self.root / "pg", data, run):
                d.mkdir(exist_ok=True)
                shutil.chown(d, "postgres", "postgres")
            os.chmod(data, 0o700)
            self._pg(str(PGBIN / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "--encoding=UTF8",
                     "--locale=C.UTF-8")
        # throwaway cluster: durability off as in CI (the restart below is a clean or immediate stop + start; it
        # exercises the services' reconnects, not PostgreSQL's crash recovery)
        self._pg(str(PGBIN / "pg_ctl"), "-D", str(data), "-l", str(self.root / "pg" / "pg.log"), "-w", "-t", "60",
                 "-o", f"-c listen_addresses=127.0.0.1 -p {self.pg_port} -k {run} -c max_connections=400 "
                       "-c fsync=off -c synchronous_commit=off -c full_page_writes=off", "start")

    def stop_postgres(self, mode: str = "fast") -> None:
        if (self.root / "pg" / "data" / "postmaster.pid").exists():
            self._pg(str(PGBIN / "pg_ctl"), "-D", str(self.root / "pg" / "data"), "-m", mode, "-w", "-t", "60", "stop")

    # -- Kafka ------------------------------------------------------------------------------------------
    def _kafka_cmd(self, main: str, *args: str) -> list[str]:
        return ["java", "-Xms128m", "-Xmx512m", "-XX:+UseG1GC", "-XX:TieredStopAtLevel=1",
                f"-Dlog4j2.configurationFile={ROOT / 'infra' / 'kafka' / 'log4j2.properties'}",
                "-cp", f"{KAFKA_LIBS}/*", main, *args]

    def start_kafka(self) -> None:
        d = self.root / "kafka"
        props = d / "server.properties"
        if not props.exists():
            (d / "data").mkdir(parents=True)
            tmpl = (ROOT / "infra" / "kafka" / "server.properties.tmpl").read_text()
            props.write_text(tmpl.replace("@KAFKA_PORT@", str(self.kafka_port))
                             .replace("@CONTROLLER_PORT@", str(self.controller_port))
                             .replace("@DATA_DIR@", str(d / "data")))
            cid = base64.urlsafe_b64encode(b"\x01" + os.urandom(15)).decode().rstrip("=")
            subprocess.run(self._kafka_cmd("kafka.tools.StorageTool", "format", "--standalone", "-t", cid, "-c",
                                           str(props), "-g"), check=True, capture_output=True, timeout=180)
        log = open(self.root / "logs" / "kafka.log", "ab")  # noqa: SIM115 - owned by the child
        self.kafka = subprocess.Popen(self._kafka_cmd("kafka.Kafka", str(props)), stdout=log,
                                      stderr=subprocess.STDOUT, start_new_session=True)
        wait_until("Kafka", lambda: self._kafka_answers(), 180)

    def _kafka_answers(self) -> bool:
        if self.kafka is not None and self.kafka.poll() is not None:
            raise RuntimeError(f"Kafka exited with {self.kafka.returncode}; see {self.root}/logs/kafka.log")
        if not port_open(self.kafka_port):
            return False

        async def probe() -> bool:
            from aiokafka.admin import AIOKafkaAdminClient
            admin = AIOKafkaAdminClient(bootstrap_servers=self.kafka_bootstrap, request_timeout_ms=5000)
            await admin.start()
            try:
                await admin.list_topics()
                return True
            finally:
                await admin.close()
        return asyncio.run(probe())

    def stop_kafka(self) -> None:
        if self.kafka is not None:
            _stop(self.kafka, 60)
            self.kafka = None

    # -- MinIO ------------------------------------------------------------------------------------------
    def start_minio(self) -> None:
        (self.root / "minio").mkdir(exist_ok=True)
        env = {**os.environ, "MINIO_ROOT_USER": self.minio_user, "MINIO_ROOT_PASSWORD": self.minio_password,
               "MINIO_BROWSER": "off", "MINIO_SCANNER_SPEED": "slowest"}
        log = open(self.root / "logs" / "minio.log", "ab")  # noqa: SIM115 - owned by the child
        self.minio = subprocess.Popen([str(MINIO_BIN), "server", "--address", f"127.0.0.1:{self.minio_port}",
                                       "--console-address", f"127.0.0.1:{self.minio_console_port}", "--quiet",
                                       str(self.root / "minio")], env=env, stdout=log, stderr=subprocess.STDOUT,
                                      start_new_session=True)
        wait_until("MinIO", lambda: httpx.get(f"http://127.0.0.1:{self.minio_port}/minio/health/live",
                                              timeout=2).status_code == 200, 90)

    def stop_minio(self) -> None:
        if self.minio is not None:
            _stop(self.minio, 30)
            self.minio = None

    # -- the whole ----------------------------------------------------------------------------------------
    @property
    def kafka_bootstrap(self) -> str:
        return f"127.0.0.1:{self.kafka_port}"

    def service_env(self) -> dict[str, str]:
        """What points a service at this stack instead of the shared one."""
        return {"SPVHUB_PG_HOST": "127.0.0.1", "SPVHUB_PG_PORT": str(self.pg_port),
                "SPVHUB_KAFKA_BOOTSTRAP": self.kafka_bootstrap,
                "SPVHUB_S3_ENDPOINT": f"127.0.0.1:{self.minio_port}", "SPVHUB_S3_ACCESS_KEY": self.minio_user,
                "SPVHUB_S3_SECRET_KEY": self.minio_password}

    def start(self) -> ChaosInfra:
        self.start_postgres()
        self.start_minio()
        self.start_kafka()
        return self

    def stop(self, keep_data: bool = False) -> None:
        for step in (self.stop_kafka, self.stop_minio, lambda: self.stop_postgres("immediate")):
            try:
                step()
            except Exception:  # noqa: BLE001 - tear down the rest all the same
                pass
        if not keep_data:
            shutil.rmtree(self.root, ignore_errors=True)


def _stop(proc: subprocess.Popen[bytes], timeout: float) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=timeout)
    except ProcessLookupError:
        return
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
