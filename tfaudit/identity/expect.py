"""CI identity cross-check: does who-and-where of an apply match what the config expects?

Configured in `.tfaudit.hcl`:

    expect {
      ci_only_accounts = ["111111111111"]         # AWS accounts only CI may change
      accounts         = ["111111111111"]         # the only AWS accounts this config may change
      ci_providers     = ["github_actions"]       # CI systems that count as CI (default: any known one)
      ci_repositories  = ["acme/infra"]           # CI runs must come from these repositories
      ci_refs          = ["refs/heads/main"]      # ... and these refs (* is a wildcard)
      require_oidc     = true                     # CI identity must be a verified GitHub OIDC token
      on_mismatch      = "deny"                   # "warn" (default): record findings; "deny": refuse, exit 5
    }

`actor.ci` comes from the CI's environment variables (and, on GitHub Actions, verified OIDC
claims, preferred when present); `actor.cloud` is the STS caller identity when recorded.
Each disagreement is a finding (the analysis `Finding`, like every gate's) on the run's
`run.started` record; with `on_mismatch = "deny"` its effect is deny.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from enum import Enum
from typing import TYPE_CHECKING, Any

from tfaudit.analysis.model import Effect, Finding, Severity

if TYPE_CHECKING:
    from tfaudit.config import BlockContext

SEVERITIES = ("info", "low", "medium", "high", "critical")


class OnMismatch(str, Enum):
    WARN = "warn"
    DENY = "deny"


@dataclass(frozen=True)
class Expectations:
    ci_only_accounts: tuple[str, ...] = ()
    accounts: tuple[str, ...] = ()
    ci_providers: tuple[str, ...] = ()
    ci_repositories: tuple[str, ...] = ()
    ci_refs: tuple[str, ...] = ()
    require_oidc: bool = False
    severity: str = "high"
    on_mismatch: OnMismatch = OnMismatch.WARN


def parse_expect(ctx: BlockContext, entries: list[Any]) -> Expectations:
    from tfaudit.config import check_keys, get_bool, get_str, get_str_list, single_block

    body = single_block(ctx, entries)
    check_keys(ctx, body, {"ci_only_accounts", "accounts", "ci_providers", "ci_repositories", "ci_refs",
                           "require_oidc", "severity", "on_mismatch"})
    severity = get_str(ctx, body, "severity", "high") or "high"
    if severity not in SEVERITIES:
        raise ctx.error(f"severity must be one of {', '.join(SEVERITIES)}, not {severity!r}")
    mode = get_str(ctx, body, "on_mismatch", "warn") or "warn"
    if mode not in {m.value for m in OnMismatch}:
        raise ctx.error(f'on_mismatch must be "warn" or "deny", not {mode!r}')
    from tfaudit.identity.actor import CIProvider

    providers = get_str_list(ctx, body, "ci_providers")
    known = {p.value for p in CIProvider}
    bad = [p for p in providers if p not in known]
    if bad:
        raise ctx.error(f"ci_providers: unknown provider {bad[0]!r}", hint="known: " + ", ".join(sorted(known)))
    accounts = get_str_list(ctx, body, "ci_only_accounts") + get_str_list(ctx, body, "accounts")
    bad = [a for a in accounts if not (a.isdigit() and len(a) == 12)]
    if bad:
        raise ctx.error(f"{bad[0]!r} is not an AWS account id (12 digits)", hint='quote it: "012345678901"')
    return Expectations(
        ci_only_accounts=get_str_list(ctx, body, "ci_only_accounts"), accounts=get_str_list(ctx, body, "accounts"),
        ci_providers=providers, ci_repositories=get_str_list(ctx, body, "ci_repositories"),
        ci_refs=get_str_list(ctx, body, "ci_refs"), require_oidc=get_bool(ctx, body, "require_oidc", False),
        severity=severity, on_mismatch=OnMismatch(mode))


_WHY = "Who applies where is checked against the config's expect block (CI, repository, ref, AWS account)."


def _finding(rule: str, severity: str, message: str, effect: Effect = Effect.WARN) -> Finding:
    return Finding(f"identity.{rule}", Severity(severity), None, message, effect, "identity", _WHY)


def _who(actor: Mapping[str, Any]) -> str:
    host = actor.get("hostname")
    return f"{actor.get('user')}" + (f" on {host}" if host else "")


def check(actor: Mapping[str, Any], exp: Expectations | None) -> list[Finding]:
    """Findings for every way actor.ci / actor.cloud disagree with the expectations."""
    if exp is None:
        return []
    found = _check(actor, exp)
    if exp.on_mismatch is OnMismatch.DENY:
        found = [replace(f, effect=Effect.DENY) for f in found]
    return found


def _check(actor: Mapping[str, Any], exp: Expectations) -> list[Finding]:
    sev = exp.severity
    out: list[Finding] = []
    ci = actor.get("ci") if isinstance(actor.get("ci"), Mapping) else None
    cloud = actor.get("cloud") if isinstance(actor.get("cloud"), Mapping) else None
    if cloud and isinstance(cloud.get("aws"), Mapping):  # actor.cloud = {"aws": {account, arn, user_id}}
        cloud = cloud["aws"]
    account = str(cloud.get("account")) if cloud and cloud.get("account") else None
    oidc = ci.get("oidc") if ci and isinstance(ci.get("oidc"), Mapping) else None
    verified = dict(oidc.get("claims") or {}) if oidc and oidc.get("verified") else None

    provider = ci.get("provider") if ci else None
    in_ci = provider is not None and provider != "generic" and (not exp.ci_providers or provider in exp.ci_providers)
    if ci and provider and not in_ci:
        why = "is not among ci_providers" if exp.ci_providers else "is not a CI system tfaudit recognizes"
        out.append(_finding("ci_provider", sev, f"CI {provider!r} {why}; the run counts as outside CI"))
    if in_ci and exp.require_oidc and verified is None:
        reason = (oidc or {}).get("reason") or "no OIDC token (grant the workflow 'id-token: write')"
        out.append(_finding("ci_unverified", sev, f"CI identity is not backed by a verified OIDC token: {reason}"))
        in_ci = False  # unverified CI counts as outside CI for the account rules below

    # Verified claims win over environment variables, which anyone can set.
    repo = (verified or {}).get("repository") or (ci or {}).get("repository")
    ref = (verified or {}).get("ref") or (ci or {}).get("ref")
    if verified and ci:
        for key, claim in (("repository", "repository"), ("ref", "ref"), ("run_id", "run_id")):
            env_v, claim_v = ci.get(key), verified.get(claim)
            if env_v and claim_v and str(env_v) != str(claim_v):
                out.append(_finding("oidc_mismatch", "critical",
                                    f"CI environment says {key} {env_v!r} but the verified OIDC token says {claim_v!r}"))
    if ci and exp.ci_repositories and repo not in exp.ci_repositories:
        out.append(_finding("ci_repository", sev, f"CI run from repository {repo!r}, expected one of "
                                                  f"{', '.join(exp.ci_repositories)}"))
    if ci and exp.ci_refs and not any(fnmatch.fnmatchcase(str(ref or ""), p) for p in exp.ci_refs):
        out.append(_finding("ci_ref", sev, f"CI run from ref {ref!r}, expected {', '.join(exp.ci_refs)}"))

    needs_account = bool(exp.accounts) or (bool(exp.ci_only_accounts) and not in_ci)
    if needs_account and account is None:
        out.append(_finding("cloud_unknown", sev, "cannot check the AWS account: no cloud identity was recorded "
                                                  "(needs identity.aws = true and working AWS credentials)"))
    if account and exp.accounts and account not in exp.accounts:
        out.append(_finding("account", sev, f"AWS account {account} ({(cloud or {}).get('arn')}) is not among the "
                                            f"expected accounts {', '.join(exp.accounts)}"))
    if account and account in exp.ci_only_accounts and not in_ci:
        where = f"CI {provider!r} that does not count" if ci else "outside CI"
        out.append(_finding("outside_ci", sev, f"change to AWS account {account}, which only CI may change, "
                                               f"from {where} (by {_who(actor)})"))
    return out


def blocking(findings: Sequence[Finding], exp: Expectations | None) -> bool:
    return bool(exp and exp.on_mismatch is OnMismatch.DENY and findings)
