"""tfaudit flush / status / kms-pubkey: delivery to sinks, and the public key of a KMS signer."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, List, Optional

import typer

from tfaudit.cli._ledgers import ReadFormat, format_option, ledger_option
from tfaudit.errors import ExitCode, UsageError

if TYPE_CHECKING:
    from tfaudit.config import Config
    from tfaudit.sinks import SinkSpec
    from tfaudit.sinks.delivery import Where

LedgerOpt = ledger_option(repeatable=False)
ConfigOpt = typer.Option(None, "--config", envvar="TFAUDIT_CONFIG", help="Config file (default: .tfaudit.hcl).")
SinkOpt = typer.Option(None, "--sink", help="Only this sink (KIND.NAME or NAME; repeatable).")


def _setup(ctx: typer.Context, ledger: str | None, config: str | None,
           only: list[str] | None) -> tuple[Where, Config, list[SinkSpec]]:
    from tfaudit.config import load_config
    from tfaudit.run.session import resolve_ledger

    obj = ctx.obj if isinstance(ctx.obj, dict) else {}
    work_dir = Path(obj["chdir"]).resolve() if obj.get("chdir") else Path.cwd()
    cfg = load_config(config, work_dir)
    store = resolve_ledger(ledger, chdir=obj.get("chdir"), config_path=config, env=os.environ, config=cfg)
    ledger_path: Where = store.local_path or store  # a shared store keeps the delivery state itself
    specs = list(cfg.section("sink") or ())
    if not specs:
        where = cfg.path or work_dir / ".tfaudit.hcl"
        raise UsageError(f"no sinks are configured ({where})", hint='add sink "<kind>" "<name>" { ... } blocks')
    if only:
        unknown = [o for o in only if not any(o in (s.id, s.name) for s in specs)]
        if unknown:
            raise UsageError(f"no sink named {unknown[0]!r}", hint="configured: " + ", ".join(s.id for s in specs))
        specs = [s for s in specs if s.id in only or s.name in only]
    return ledger_path, cfg, specs


commands = typer.Typer()  # this module's commands, added to the root app by tfaudit.cli.app


@commands.command()
def flush(ctx: typer.Context, ledger: Optional[str] = LedgerOpt, config: Optional[str] = ConfigOpt,
          sink: Optional[List[str]] = SinkOpt,
          backfill: bool = typer.Option(False, "--backfill", help="Also send records written before the sink "
                                                                   "was configured (never re-sends what it has)."),
          deadline: Optional[float] = typer.Option(None, "--deadline", min=1, max=3600,
                                                   help="Seconds per sink (default: delivery.deadline_seconds); "
                                                        "raise it to drain a large backlog in one go."),
          fmt: ReadFormat = format_option(),
          as_json: bool = typer.Option(False, "--json", hidden=True, help="Same as --format json.")) -> int:
    """Deliver every record still owed to the sinks; exits 4 if some remain pending."""
    as_json = as_json or fmt is ReadFormat.JSON
    from dataclasses import replace

    from tfaudit.redact import Redactor
    from tfaudit.sinks import DeliveryConfig
    from tfaudit.sinks.delivery import deliver, where_name

    ledger_path, cfg, specs = _setup(ctx, ledger, config, sink)
    delivery_cfg = cfg.section("delivery") or DeliveryConfig()
    if deadline is not None:
        delivery_cfg = replace(delivery_cfg, deadline_seconds=deadline)
    from tfaudit.trail.store import open_existing

    open_existing(ledger_path if isinstance(ledger_path, Path) else ledger_path.url)
    redactor = Redactor.with_additions(cfg.redact.names, cfg.redact.values)
    report = deliver(ledger_path, specs, delivery_cfg, os.environ, redactor, backfill=backfill)
    if as_json:
        typer.echo(json.dumps(report.as_dict(), indent=2))
    else:
        for r in report.sinks:
            line = f"{r.sink}: {r.delivered} delivered"
            if r.confirmed:
                line += f", {r.confirmed} already there"
            if r.pending:
                line += f", {r.pending} still pending ({r.error})"
            typer.echo(line)
        typer.echo(f"flush: {report.delivered} delivered, {report.pending} pending")
    return int(ExitCode.AUDIT_WRITE if report.pending else ExitCode.OK)

@commands.command()
def status(ctx: typer.Context, ledger: Optional[str] = LedgerOpt, config: Optional[str] = ConfigOpt,
           sink: Optional[List[str]] = SinkOpt,
           fmt: ReadFormat = format_option(),
           as_json: bool = typer.Option(False, "--json", hidden=True, help="Same as --format json.")) -> int:
    """Show, per sink, how many records are delivered and how many wait in the outbox."""
    as_json = as_json or fmt is ReadFormat.JSON
    from tfaudit.redact import Redactor
    from tfaudit.sinks.delivery import status as sink_status, where_name

    ledger_path, cfg, specs = _setup(ctx, ledger, config, sink)
    rows = sink_status(ledger_path, specs, Redactor.with_additions(cfg.redact.names, cfg.redact.values))
    if as_json:
        typer.echo(json.dumps({"ledger": where_name(ledger_path), "sinks": [r.as_dict() for r in rows]}, indent=2))
        return 0
    width = max(len(r.sink) for r in rows)
    typer.echo(f"{'sink':<{width}}  {'pending':>7}  {'delivered':>9}  oldest pending / last error")
    for r in rows:
        if not r.enrolled:
            typer.echo(f"{r.sink:<{width}}  {'-':>7}  {'-':>9}  not enrolled yet (owed records start with the next run)")
            continue
        note = ""
        if r.pending:
            note = f"seq {r.oldest_pending_seq} ({r.oldest_pending_time})"
            if r.in_doubt:
                note += f"; {r.in_doubt} in doubt (crash mid-send)"
            if r.last_error:
                note += f"; {r.last_error} at {r.last_error_at}"
        if r.backfill:
            note = (note + "; " if note else "") + "backfill in progress"
        typer.echo(f"{r.sink:<{width}}  {r.pending:>7}  {r.delivered_total:>9}  {note}".rstrip())
    total = sum(r.pending for r in rows)
    typer.echo(f"{total} pending" + ("; run 'tfaudit flush' to deliver them" if total else ""))
    return 0

@commands.command("kms-pubkey")
def kms_pubkey(ctx: typer.Context, config: Optional[str] = ConfigOpt,
               kms_key_id: Optional[str] = typer.Option(None, "--kms-key-id", help="Key id, ARN or alias/NAME "
                                                        "(default: signing.kms_key_id from the config)."),
               region: Optional[str] = typer.Option(None, "--region", help="AWS region."),
               profile: Optional[str] = typer.Option(None, "--profile", help="AWS profile."),
               endpoint_url: Optional[str] = typer.Option(None, "--endpoint-url", help="KMS endpoint URL."),
               out: Optional[Path] = typer.Option(None, "--out", help="Write the PEM here instead of stdout.")) -> int:
    """Fetch an AWS KMS signing key's public key (PEM), for 'tfaudit verify --public-key'."""
    from tfaudit import _aws
    from tfaudit.config import load_config
    from tfaudit.errors import SigningKeyError
    from tfaudit.trail.kms import fetch_public_key, public_key_pem
    from tfaudit.trail.signing import key_id_for

    obj = ctx.obj if isinstance(ctx.obj, dict) else {}
    work_dir = Path(obj["chdir"]).resolve() if obj.get("chdir") else Path.cwd()
    options: dict[str, Any] = {}
    if not kms_key_id:
        cfg = load_config(config, work_dir)
        if cfg.signing.signer != "kms":
            raise UsageError("no KMS key given and the config has no signing { signer = \"kms\" } block",
                             hint="pass --kms-key-id")
        options = dict(cfg.signing.options)
    key_ref = kms_key_id or str(options["kms_key_id"])
    settings = _aws.AwsSettings(region or options.get("region"), profile or options.get("profile"),
                                endpoint_url or options.get("endpoint_url"))
    try:
        client = _aws.client("kms", settings, os.environ, max_attempts=3)
    except ImportError as e:
        raise SigningKeyError("kms-pubkey needs boto3", hint="pip install 'tfaudit[aws]'") from e
    key, arn = fetch_public_key(client, key_ref)
    pem = public_key_pem(key)
    if out is None:
        typer.echo(pem.decode().rstrip("\n"))
        return 0
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(pem)
    except OSError as e:
        raise UsageError(f"cannot write {out}: {e.strerror}") from e
    typer.echo(f"public key: {out}\nkey id:     {key_id_for(key)}\nkms key:    {arn}")
    return 0
