"""Real servers on loopback for scale-path tests (PostgreSQL, S3, MLflow, Redis) and Java for Spark.

Each helper installs the Debian package when the binary is missing (root only) and skips the
calling test with the reason when it cannot.
"""

from __future__ import annotations

import fcntl
import glob
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, timeout: float, process: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"server exited with code {process.returncode} before listening")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


def apt_install(package: str) -> None:
    """``apt-get install package`` when we are root on Debian; silently nothing otherwise.
    One install at a time across processes (parallel test workers): dpkg holds a lock and a
    second apt-get would fail on it instead of waiting."""
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        return
    with open(Path(tempfile.gettempdir()) / "crmscore-tests-apt.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        subprocess.run(["apt-get", "update", "-qq"], check=False, capture_output=True)
        subprocess.run(
            ["apt-get", "install", "-y", "-qq", package],
            check=False,
            capture_output=True,
            env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
        )


def ensure_java() -> None:
    """A Java runtime for Spark (Debian's OpenJDK 17 when none is installed), or skip."""
    if shutil.which("java") is None:
        apt_install("openjdk-17-jre-headless")
    if shutil.which("java") is None:
        pytest.skip("no Java runtime, and openjdk-17-jre-headless could not be installed")


def _postgres_bin() -> Path | None:
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(candidates[-1]).parent if candidates else None


def ensure_postgres() -> Path:
    """Directory of PostgreSQL's server binaries, installing Debian's package if needed."""
    if _postgres_bin() is None:
        apt_install("postgresql")
    bin_dir = _postgres_bin()
    if bin_dir is None:
        pytest.skip("PostgreSQL server binaries are not installed and could not be installed")
    return bin_dir


@contextmanager
def postgres_server() -> Iterator[str]:
    """A throw-away PostgreSQL cluster on a free loopback port; yields a SQLAlchemy URL."""
    bin_dir = ensure_postgres()
    # PostgreSQL refuses to run as root: run it as the 'postgres' user when we are root.
    as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    root = Path(tempfile.mkdtemp(prefix="crmscore-pg-"))
    if as_user:
        shutil.chown(root, "postgres")
    data, port = root / "data", free_port()
    subprocess.run(
        [*as_user, bin_dir / "initdb", "-D", data, "--auth=trust", "-U", "postgres"],
        check=True,
        capture_output=True,
    )
    server = subprocess.Popen(
        [
            *as_user,
            bin_dir / "postgres",
            "-D",
            data,
            "-p",
            str(port),
            "-k",
            root,
            "-c",
            "listen_addresses=127.0.0.1",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port, 30, server)
        for _ in range(50):  # accepting TCP is not yet accepting queries
            if (
                subprocess.run(
                    [
                        *as_user,
                        bin_dir / "createdb",
                        "-h",
                        "127.0.0.1",
                        "-p",
                        str(port),
                        "-U",
                        "postgres",
                        "mlflow",
                    ],
                    capture_output=True,
                ).returncode
                == 0
            ):
                break
            time.sleep(0.2)
        # psycopg2 explicitly: SQLAlchemy 2.1 otherwise expects psycopg 3
        yield f"postgresql+psycopg2://postgres@127.0.0.1:{port}/mlflow"
    finally:
        server.terminate()
        server.wait(30)
        shutil.rmtree(root, ignore_errors=True)


#: Credentials for the loopback S3 server (moto accepts any); MLflow's server reads them from env.
S3_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@contextmanager
def s3_server(bucket: str) -> Iterator[dict[str, str]]:
    """moto's S3 server on a free loopback port, with ``bucket`` created. Yields the environment
    an S3 client needs: credentials and ``MLFLOW_S3_ENDPOINT_URL``."""
    import boto3

    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    command = [Path(sys.executable).parent / "moto_server", "-H", "127.0.0.1", "-p", str(port)]
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port, 60, server)
        client = boto3.client(
            "s3",
            endpoint_url=endpoint,
            region_name=S3_CREDENTIALS["AWS_DEFAULT_REGION"],
            aws_access_key_id=S3_CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=S3_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        )
        client.create_bucket(Bucket=bucket)
        yield {**S3_CREDENTIALS, "MLFLOW_S3_ENDPOINT_URL": endpoint}
    finally:
        server.terminate()
        server.wait(30)


@contextmanager
def mlflow_server(
    backend_store_uri: str, artifacts: str | Path, env: dict[str, str] | None = None
) -> Iterator[str]:
    """``mlflow server`` over ``backend_store_uri``, proxying artifacts to ``artifacts`` (a folder
    or an ``s3://`` URI, with ``env`` giving its credentials); yields its http URI."""
    port = free_port()
    mlflow = Path(sys.executable).parent / "mlflow"
    command = [
        mlflow,
        "server",
        "--backend-store-uri",
        backend_store_uri,
        "--artifacts-destination",
        str(artifacts),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
    ]
    with tempfile.TemporaryFile() as log:
        server = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})}
        )
        try:
            try:
                # its first start creates the schema: minutes on a busy two-core machine
                wait_for_port(port, 240, server)
            except (RuntimeError, TimeoutError) as error:
                log.seek(0)
                raise RuntimeError(f"{error}:\n{log.read().decode()[-3000:]}") from None
            yield f"http://127.0.0.1:{port}"
        finally:
            server.terminate()
            server.wait(30)


@contextmanager
def redis_server(directory: Path) -> Iterator[str]:
    """A throwaway redis-server on a free loopback port (Debian's package installed if missing);
    yields its ``host:port`` connection string."""
    port = free_port()
    process = start_redis(directory, port)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=10)


def start_redis(directory: Path, port: int) -> subprocess.Popen:
    """redis-server on loopback ``port`` once it answers; it keeps nothing on disk, but loads the
    ``dump.rdb`` a ``SHUTDOWN SAVE`` left in ``directory`` (a restart with the same data)."""
    import redis

    if shutil.which("redis-server") is None:
        apt_install("redis-server")
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed and could not be installed with apt-get")
    command = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
               "--appendonly", "no", "--dir", str(directory)]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    client = redis.Redis(host="127.0.0.1", port=port)
    for _ in range(100):
        try:
            if client.ping():
                return process
        except redis.ConnectionError:
            time.sleep(0.05)
    process.terminate()
    pytest.fail("redis-server did not answer on loopback")
