"""Naming a shared store: URLs, the config's `ledger { url }`, and no heavy imports for the file store."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tfaudit.config import parse_config
from tfaudit.errors import ConfigError, UsageError
from tfaudit.trail.store import open_store


def test_url_mistakes_are_usage_errors_naming_the_fix() -> None:
    with pytest.raises(UsageError, match="PGPASSWORD"):
        open_store("postgresql://bob:hunter2@localhost/db")
    with pytest.raises(UsageError, match="not a valid S3 bucket name"):
        open_store("s3://No_Such_Bucket!/x")
    with pytest.raises(UsageError, match="unknown option 'colour'"):
        open_store("s3://a-bucket/x?colour=red")
    with pytest.raises(UsageError, match="MODE:DAYS"):
        open_store("s3://a-bucket/x?object_lock=FOREVER")
    with pytest.raises(UsageError, match="unknown ledger store"):
        open_store("ftp://example/x")


def test_the_password_never_appears_in_the_store_name() -> None:
    store = open_store("postgresql://tfaudit@db.internal:5433/audit?sslmode=require")
    assert store.url == "postgresql://tfaudit@db.internal:5433/audit"
    store = open_store("postgresql://tfaudit@/audit?host=/run/postgresql&port=5433")
    assert store.url == "postgresql://tfaudit@/audit?host=/run/postgresql&port=5433"


def test_config_names_a_shared_store(tmp_path: Path) -> None:
    cfg = tmp_path / ".tfaudit.hcl"
    cfg.write_text('ledger {\n  url = "s3://acme-audit/infra"\n}\n')
    assert parse_config(cfg).ledger.url == "s3://acme-audit/infra"
    cfg.write_text('ledger {\n  url = "s3://acme-audit/infra"\n  path = "x.jsonl"\n}\n')
    with pytest.raises(ConfigError, match="not both"):
        parse_config(cfg)
    cfg.write_text('ledger {\n  url = "audit.jsonl"\n}\n')
    with pytest.raises(ConfigError, match="not a store URL"):
        parse_config(cfg)


def test_the_file_store_imports_neither_boto3_nor_psycopg(tmp_path: Path) -> None:
    code = (f"import sys; from tfaudit.trail.store import open_store; s = open_store({str(tmp_path / 'l.jsonl')!r}); "
            "s.tail(); print(sorted(m for m in ('boto3', 'botocore', 'psycopg') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
