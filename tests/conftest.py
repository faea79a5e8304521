"""Shared test fixtures: real terraform, one init per fixture config, the tfaudit CLI as a user runs it."""

from __future__ import annotations

import json
import os
import pty
import select
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "fixtures"
PLUGIN_MIRROR = Path("/opt/tf-plugins")
from corpus import CORPUS as REAL_WORLD  # noqa: E402,F401  (the real-world corpus; see tests/corpus.py)


def require_terraform() -> str:
    """The terraform binary, or a skip (a failure when TFAUDIT_REQUIRE_TERRAFORM=1, as in CI)."""
    path = shutil.which("terraform") or shutil.which("tofu")
    if path:
        return path
    reason = "terraform (or tofu) is not on PATH"
    if os.environ.get("TFAUDIT_REQUIRE_TERRAFORM") == "1":
        pytest.fail(f"{reason}, and TFAUDIT_REQUIRE_TERRAFORM=1 forbids skipping", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def tf_cli_config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A terraform CLI config of our own: the provider mirror when present, nothing else."""
    path = tmp_path_factory.mktemp("tfrc") / "terraformrc"
    if PLUGIN_MIRROR.is_dir():
        path.write_text(
            'provider_installation {\n  filesystem_mirror {\n    path    = "%s"\n'
            '    include = ["registry.terraform.io/*/*"]\n  }\n  direct {\n'
            '    exclude = ["registry.terraform.io/*/*"]\n  }\n}\n' % PLUGIN_MIRROR
        )
    else:
        path.write_text("")
    return path


@pytest.fixture(scope="session")
def base_env(tf_cli_config: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The environment every CLI run gets: our terraform config, no CI variables, a private HOME."""
    home = tmp_path_factory.mktemp("home")
    keep = {k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "LC_ALL", "TMPDIR", "PYTHONPATH")}
    return {
        **keep,
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "TF_CLI_CONFIG_FILE": str(tf_cli_config),
        "TF_IN_AUTOMATION": "1",
        "CHECKPOINT_DISABLE": "1",
        "TF_PLUGIN_CACHE_DIR": str(tmp_path_factory.mktemp("plugin-cache")),
        "USER": "alice",
        "TFAUDIT_LOG_FORMAT": "json",
    }


@pytest.fixture(scope="session")
def _initialized(base_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """Run `terraform init` once per fixture config per session; tests copy the result."""
    cache: dict[str, Path] = {}

    def get(name: str) -> Path:
        if name not in cache:
            tf = require_terraform()
            dest = tmp_path_factory.mktemp(f"init-{name.replace('/', '-')}") / "cfg"
            shutil.copytree(FIXTURES / name, dest)
            res = subprocess.run([tf, "init", "-input=false", "-no-color"], cwd=dest, env=base_env,
                                 capture_output=True, text=True, timeout=300)
            assert res.returncode == 0, res.stdout + res.stderr
            cache[name] = dest
        return cache[name]

    return get


@pytest.fixture
def tf_workdir(_initialized: Callable[[str], Path], tmp_path: Path) -> Callable[[str], Path]:
    """A fresh, already-initialized copy of fixtures/<name> in this test's tmp dir."""

    def make(name: str) -> Path:
        src = _initialized(name)
        dest = tmp_path / name.replace("/", "-")
        shutil.copytree(src, dest, symlinks=True)
        return dest

    return make


@dataclass
class CliResult:
    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


@pytest.fixture
def run_tfaudit(base_env: dict[str, str]) -> Callable[..., CliResult]:
    """Run the real `tfaudit` CLI in a subprocess, as a user would."""

    def run(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None,
            input: str | None = None, timeout: float = 300) -> CliResult:
        full_env = {**base_env, **(env or {})}
        res = subprocess.run([sys.executable, "-m", "tfaudit", *args], cwd=cwd, env=full_env, input=input,
                             capture_output=True, text=True, timeout=timeout)
        return CliResult(res.returncode, res.stdout, res.stderr)

    return run


Cli = Callable[..., tuple[int, str, str]]


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Cli:
    """tfaudit's entry point called in this process: one command's (exit code, stdout, stderr)."""
    from tfaudit.cli.app import main

    def run(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        rc = main(list(args))
        out, err = capsys.readouterr()
        return rc, out, err

    return run


# --- a pseudo-terminal: the screen a person sees ---------------------------------------------------
def read_terminal(master: int, idle: float = 300) -> bytes:
    """All that reaches the pseudo-terminal of this master side until every program has closed the
    other side (or `idle` seconds pass without a byte); closes master."""
    out = b""
    while select.select([master], [], [], idle)[0]:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the last descriptor of the terminal's other side is closed
            break
        if not chunk:
            break
        out += chunk
    os.close(master)
    return out


@dataclass
class TerminalResult:
    returncode: int
    drawn: str  # what reached the terminal
    piped: str  # the other stream


def on_a_terminal(args: list[str], *, env: dict[str, str], cwd: Path | None = None, stream: str = "stderr",
                  timeout: float = 120) -> TerminalResult:
    """Run the real `tfaudit` CLI with `stream` (stderr or stdout) on a pseudo-terminal, as a person
    sees it, and the other stream captured apart."""
    master, slave = pty.openpty()
    with tempfile.TemporaryFile() as other:  # a file, not a pipe: a full pipe cannot stall the terminal
        out, err = (slave, other) if stream == "stdout" else (other, slave)
        proc = subprocess.Popen([sys.executable, "-m", "tfaudit", *args], cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                                stdout=out, stderr=err)
        os.close(slave)
        drawn = read_terminal(master, timeout)
        rc = proc.wait(timeout=timeout)
        other.seek(0)
        piped = other.read()
    return TerminalResult(rc, drawn.decode("utf-8", "replace"), piped.decode("utf-8", "replace"))


@pytest.fixture
def keypair(tmp_path: Path) -> tuple[Path, Path]:
    from tfaudit.trail.signing import generate_keypair

    return generate_keypair(tmp_path / "keys" / "signing-key")


def read_ledger(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.fixture
def ledger_records() -> Callable[[Path], list[dict[str, Any]]]:
    return read_ledger


# --- a real AWS endpoint: one moto server for the whole session --------------------------
@dataclass(frozen=True)
class MotoServer:
    url: str
    port: int

    def client(self, service: str, region: str = "us-east-1") -> Any:
        import boto3

        return boto3.client(service, endpoint_url=self.url, region_name=region,
                            aws_access_key_id="test", aws_secret_access_key="test")

    def kms_signing_alias(self, prefix: str = "audit") -> str:
        """A fresh ECC P-256 signing key in this server's KMS; its alias (`alias/PREFIX-<random>`)."""
        import uuid

        kms = self.client("kms")
        key_id = kms.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["KeyId"]
        alias = f"alias/{prefix}-{uuid.uuid4().hex[:8]}"
        kms.create_alias(AliasName=alias, TargetKeyId=key_id)
        return alias

    def aws_env(self) -> dict[str, str]:
        """Environment for a tfaudit subprocess that should reach this server the way boto3 does."""
        return {"AWS_ENDPOINT_URL": self.url, "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
                "AWS_REGION": "us-east-1", "AWS_DEFAULT_REGION": "us-east-1"}


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoServer]:
    """A real moto server on a loopback port, shared by every test that talks AWS over HTTP.

    Tests must use fresh resource names (a uuid suffix) so they do not see each other's resources.
    """
    pytest.importorskip("moto.server")
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield MotoServer(f"http://{host}:{port}", port)
    finally:
        server.stop()


@pytest.fixture
def kms_alias(moto_server: MotoServer) -> str:
    """A fresh KMS signing key on the session's moto server; its alias."""
    return moto_server.kms_signing_alias()


# --- a real PostgreSQL server: one throwaway cluster per session, a fresh database per test ----------
@dataclass(frozen=True)
class PgServer:
    socket_dir: Path
    port: int
    bindir: Path

    def url(self, dbname: str) -> str:
        return f"postgresql://postgres@/{dbname}?host={self.socket_dir}&port={self.port}"

    def admin(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(_as_postgres([str(self.bindir / args[0]), "-h", str(self.socket_dir), "-p",
                                            str(self.port), *args[1:]]), capture_output=True, text=True, timeout=60)


def _as_postgres(argv: list[str]) -> list[str]:
    """initdb refuses root: run the server's tools as the postgres user when we are root."""
    return ["runuser", "-u", "postgres", "--", *argv] if os.geteuid() == 0 else argv


@pytest.fixture(scope="session")
def pg_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PgServer]:
    """A real PostgreSQL cluster on a Unix socket only (listen_addresses=''), stopped at the end."""
    import glob
    import socket
    import tempfile

    pytest.importorskip("psycopg")
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        reason = "PostgreSQL is not installed (/usr/lib/postgresql/*/bin/initdb; Debian package postgresql)"
        if os.environ.get("TFAUDIT_REQUIRE_TERRAFORM") == "1":
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    bindir = Path(found[-1]).parent
    base = Path(tempfile.mkdtemp(prefix="tfaudit-pg-"))  # short: a socket path has a length limit
    base.chmod(0o755)
    if os.geteuid() == 0:
        shutil.chown(base, "postgres")
    with socket.socket() as s:  # a free port number names the socket file; nothing listens on TCP
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    res = subprocess.run(_as_postgres([str(bindir / "initdb"), "-D", str(base / "data"), "-A", "trust", "-U", "postgres",
                                       "--no-sync"]), capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr
    opts = f"-k {base} -p {port} -c listen_addresses='' -c fsync=off -c max_connections=200"
    res = subprocess.run(_as_postgres([str(bindir / "pg_ctl"), "-D", str(base / "data"), "-o", opts, "-l",
                                       str(base / "log"), "-w", "start"]), capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr + (base / "log").read_text(errors="replace")
    try:
        yield PgServer(base, port, bindir)
    finally:
        subprocess.run(_as_postgres([str(bindir / "pg_ctl"), "-D", str(base / "data"), "-m", "immediate", "stop"]),
                       capture_output=True, timeout=120)
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def pg_url(pg_server: PgServer) -> str:
    """A fresh, empty database on the session's server; its postgresql:// URL."""
    import uuid

    name = "t" + uuid.uuid4().hex[:12]
    res = pg_server.admin("createdb", "-U", "postgres", name)
    assert res.returncode == 0, res.stderr
    return pg_server.url(name)


@pytest.fixture
def s3_ledger_url(moto_server: MotoServer) -> str:
    """A fresh bucket on the session's moto server; an s3:// ledger URL in it."""
    import uuid

    bucket = "ledger-" + uuid.uuid4().hex[:12]
    moto_server.client("s3").create_bucket(Bucket=bucket)
    return f"s3://{bucket}/trail"
