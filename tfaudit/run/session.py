"""The session of a recorded run: config, ledger store, signer, terraform and actor, resolved once.

`resolve_ledger` is the one place that decides which ledger a command writes or reads:
--ledger, else TFAUDIT_LEDGER, else the config's `ledger { path }`, else
`.tfaudit/ledger.jsonl` in terraform's working directory (-chdir included). The reading
commands (log, history, report, flush, status, ci run) ask it too.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tfaudit.config import Config, load_config
from tfaudit.errors import UsageError
from tfaudit.trail.store import LedgerStore, open_store
from tfaudit.ui.console import Console

if TYPE_CHECKING:  # the reading commands resolve their ledger here: signing, identity and terraform load when used
    from tfaudit.redact import Redactor
    from tfaudit.terraform.binary import Terraform
    from tfaudit.trail.signing import Signer

DEFAULT_LEDGER = Path(".tfaudit") / "ledger.jsonl"


@dataclass(frozen=True)
class Invocation:
    """What the user asked for: the command, terraform's arguments, and tfaudit's own options."""

    command: str
    tf_args: tuple[str, ...] = ()
    chdir: str | None = None
    ledger: str | None = None
    signing_key: str | None = None
    config: str | None = None
    tf_path: str | None = None
    checkpoints: str | None = None  # --checkpoints DIR|s3://...|https://...
    fail_on: str | None = None  # --fail-on / TFAUDIT_FAIL_ON severity gate


@dataclass
class Session:
    """Everything resolved before terraform changes anything."""

    inv: Invocation
    env: Mapping[str, str]
    config: Config
    store: LedgerStore
    signer: Signer
    tf: Terraform
    actor: dict[str, Any]
    redactor: Redactor
    console: Console

    @property
    def outbox_base(self) -> Path | LedgerStore:
        """Where delivery keeps its state: an outbox beside a file ledger, or in a shared store itself
        (as `tfaudit flush` finds it)."""
        return self.store.local_path or self.store

    @property
    def ledger_file(self) -> Path:
        """The ledger as a path, for messages (a shared store's URL)."""
        return self.store.local_path or Path(self.store.url)

    @property
    def local_dir(self) -> Path:
        """This machine's directory for the ledger's companions (run journals): beside a file
        ledger; for a shared store, .tfaudit in terraform's working directory."""
        path = self.store.local_path
        return path.parent if path is not None else (self.tf.working_dir / DEFAULT_LEDGER).parent.resolve()


# --- resolving the ledger, the config and the key ----------------------------------------------
def work_dir_of(chdir: str | None) -> Path:
    return Path(chdir).resolve() if chdir else Path.cwd()


def ledger_location(given: str | None, *, chdir: str | None, config: Config, env: Mapping[str, str]) -> str:
    """The ledger a command uses, as a path or store URL (see the module docstring)."""
    explicit = given or env.get("TFAUDIT_LEDGER")
    if explicit:
        return explicit if "://" in explicit else str(Path(explicit).expanduser().resolve())
    if config.ledger.url is not None:  # ledger { url = "s3://..." }: a shared store
        return config.ledger.url
    if config.ledger.path is not None:
        return str(config.ledger.path.resolve())
    return str((work_dir_of(chdir) / DEFAULT_LEDGER).resolve())


def resolve_ledger(given: str | None, *, chdir: str | None, config_path: str | None, env: Mapping[str, str],
                   config: Config | None = None) -> LedgerStore:
    """The ledger store a command writes or reads; the config is loaded unless given."""
    cfg = config if config is not None else load_config(config_path or env.get("TFAUDIT_CONFIG"), work_dir_of(chdir))
    return open_store(ledger_location(given, chdir=chdir, config=cfg, env=env), env)


def resolve_signer(inv: Invocation, cfg: Config, env: Mapping[str, str], console: Console) -> Signer:
    from tfaudit.trail.signing import default_key_path, generate_keypair, load_signer

    explicit = inv.signing_key or env.get("TFAUDIT_SIGNING_KEY")
    if explicit:
        return load_signer(Path(explicit).expanduser())
    if cfg.signing.signer == "kms":
        from tfaudit.trail.kms import KmsSigner  # boto3 only when a KMS signer is configured

        kms_signer: Signer = KmsSigner.from_config(cfg.signing.options, env)
        return kms_signer
    if cfg.signing.key is not None:
        return load_signer(cfg.signing.key)
    path = default_key_path(env)
    if not path.exists():
        refuse_throwaway_key_in_ci(env)
        generate_keypair(path)
        console.warn(f"tfaudit: created a signing key at {path} (public key: {path}.pub); "
                     f"verify ledgers with 'tfaudit verify LEDGER --public-key {path}.pub'")
    return load_signer(path)


def refuse_throwaway_key_in_ci(env: Mapping[str, str]) -> None:
    """A key made on a CI runner dies with the runner: its records could never be verified."""
    from tfaudit.identity.actor import detect_ci

    ci = detect_ci(env)
    if ci is None:
        return
    raise UsageError(
        f"no signing key is configured, and this is CI ({ci.get('provider')}): a key created here would be "
        "lost with the runner and its records could not be verified",
        hint="give a key from a CI secret (TFAUDIT_SIGNING_KEY=/path/to/key or --signing-key), or configure "
             'a KMS signer (signing { signer = "kms" ... } in .tfaudit.hcl)')


def _actor(cfg: Config, env: Mapping[str, str], work_dir: Path, redactor: Redactor) -> dict[str, Any]:
    from tfaudit.identity.actor import IdentityOptions, collect_actor

    ident = cfg.identity
    actor = collect_actor(cwd=work_dir, env=env, options=IdentityOptions(
        user=ident.user, git=ident.git, ci=ident.ci, hostname=ident.hostname))
    if ident.aws:  # STS caller identity; boto3 is imported only when AWS credentials are present
        from tfaudit.identity.cloud import cloud_identity

        actor["cloud"] = cloud_identity(env)
    # GitHub Actions OIDC identity claims into actor.ci.oidc (never the token itself)
    if ident.ci and env.get("ACTIONS_ID_TOKEN_REQUEST_URL"):
        from tfaudit.identity import oidc

        oidc.attach(actor, env, cfg.section("oidc"), redactor)
    return actor


def open_session(inv: Invocation, env: Mapping[str, str], console: Console) -> Session:
    from tfaudit import logs
    from tfaudit.redact import Redactor
    from tfaudit.terraform.binary import detect, find_binary

    work_dir = work_dir_of(inv.chdir)
    cfg = load_config(inv.config or env.get("TFAUDIT_CONFIG"), work_dir)
    find_binary(inv.tf_path, env)  # fail on a missing terraform before touching anything
    store = resolve_ledger(inv.ledger, chdir=inv.chdir, config_path=None, env=env, config=cfg)
    store.check_writable()
    signer = resolve_signer(inv, cfg, env, console)
    tf = detect(inv.tf_path, env, inv.chdir)
    redactor = Redactor.with_additions(cfg.redact.names, cfg.redact.values)
    logs.set_redactor(redactor)  # log lines learn the config's secrets, and the plan's as they are found
    session = Session(inv, env, cfg, store, signer, tf, {}, redactor, console)
    session.actor = _actor(cfg, env, work_dir, redactor)
    if cfg.section("sink"):  # owe the sinks every record this run writes, before it writes one
        from tfaudit.sinks.delivery import prepare

        prepare(session.outbox_base, cfg.section("sink"), cfg.section("delivery"), console.warn)
    return session
