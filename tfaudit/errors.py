"""One exception tree for tfaudit, and the map from it to documented exit codes.

Every error a user can cause or meet carries a one-line message that names the
problem and, where there is one, the fix. The CLI's single top-level handler
turns these into that line on stderr and the exit code below; nothing else in
the package prints errors or calls ``sys.exit``.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """tfaudit's own exit codes. Wrapped commands otherwise return terraform's code."""

    OK = 0
    FAILURE = 1  # terraform failed, or `tfaudit verify` found a problem
    CHANGES = 2  # terraform's -detailed-exitcode "changes present"; `tfaudit drift` found drift
    INTERNAL = 3  # a bug in tfaudit
    AUDIT_WRITE = 4  # the audit trail could not be written (ledger, key, delivery with on_failure=fail)
    POLICY = 5  # blocked by policy (deny rules, --fail-on, unrecorded plan)
    USAGE = 64  # bad invocation, bad input file or bad config (EX_USAGE)
    INTERRUPTED = 1  # SIGINT/SIGTERM: terraform exits 1 when interrupted, and so does tfaudit (an alias of FAILURE)


class TfauditError(Exception):
    """Base of every error tfaudit raises on purpose."""

    exit_code: ExitCode = ExitCode.INTERNAL

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


# --- usage and input: exit 64 ------------------------------------------------
class UsageError(TfauditError):
    exit_code = ExitCode.USAGE


class InputError(UsageError):
    """A file given to tfaudit cannot be used (plan, state, stream, key)."""


class LedgerNotFound(InputError):
    """The ledger a command reads does not exist (exit 64 for every command that reads one)."""


class PlanError(InputError):
    pass


class StateError(InputError):
    pass


class StreamError(InputError):
    pass


class ConfigError(UsageError):
    """`.tfaudit.hcl` is malformed or has an unknown/invalid setting."""


class TerraformNotFound(UsageError):
    pass


# --- audit trail: exit 4 ------------------------------------------------------
class AuditWriteError(TfauditError):
    """The audit trail cannot be written; nothing is applied when this happens first."""

    exit_code = ExitCode.AUDIT_WRITE


class LedgerError(AuditWriteError):
    pass


class SigningKeyError(AuditWriteError):
    """A signing key is missing, unreadable, insecure or of the wrong type."""


class SchemaError(AuditWriteError):
    """A record failed schema validation before it was written (a tfaudit bug or bad input)."""


class DeliveryError(AuditWriteError):
    """A sink could not take records (only fatal with delivery.on_failure = "fail")."""


class SinkError(DeliveryError):
    pass


# --- policy: exit 5 -----------------------------------------------------------
class PolicyError(TfauditError):
    exit_code = ExitCode.POLICY


# --- verification: exit 1 -------------------------------------------------------
class VerificationError(TfauditError):
    """The ledger (or a proof, or a checkpoint) does not verify."""

    exit_code = ExitCode.FAILURE


# --- terraform itself -----------------------------------------------------------
class TerraformError(TfauditError):
    """A terraform step tfaudit needed (version, show, state pull) failed."""

    exit_code = ExitCode.FAILURE

    def __init__(self, message: str, *, argv: list[str] | None = None, returncode: int | None = None,
                 stderr: str = "", hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.argv = argv or []
        self.returncode = returncode
        self.stderr = stderr


class ForgeError(TfauditError):
    """A pull or merge request API (GitHub, GitLab) refused or could not be reached."""

    exit_code = ExitCode.FAILURE

    def __init__(self, message: str, *, status: int | None = None, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.status = status


class Interrupted(TfauditError):
    exit_code = ExitCode.INTERRUPTED


EXIT_CODES_DOC = {
    0: "success (wrapped commands: terraform's own exit code is returned)",
    1: "terraform failed or was interrupted (SIGINT/SIGTERM, forwarded to terraform, as terraform exits), "
       "verification found a problem, or a CI API (pull/merge request comment) failed",
    2: "changes present (-detailed-exitcode), or drift found by `tfaudit drift`",
    3: "internal error in tfaudit (re-run with --log-format json -v for detail)",
    4: "the audit trail could not be written (ledger, signing key, checkpoint or delivery with on_failure = \"fail\")",
    5: "blocked by policy",
    64: "usage error: bad arguments, bad config, unreadable input file (a missing or unreadable ledger included)",
}
