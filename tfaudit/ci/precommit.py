"""pre-commit hooks: validate `.tfaudit.hcl`, and plan + analyze each changed root module.

pre-commit passes the changed files. A root module is a directory of `.tf`/`.tofu` files
that no other module in the repository uses as a local `source = "./..."`; a changed file
in a child module affects every root module that reaches it through local sources, and a
file outside any module (a `.tfvars` in a sub-folder, `.tfaudit.hcl` beside the code)
belongs to the nearest module directory above it. Each affected root module runs once.

For each root: `terraform init` when it has never been initialized, `terraform plan` to a
temporary file (or tfaudit's recorded plan when a `plan.recorded` record is asked for), then
the analysis `tfaudit analyze` runs, with the configured rules and `--fail-on`; both in this process. The hook fails when a plan
fails, a deny rule matches, or a finding reaches `--fail-on`.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from tfaudit.errors import ConfigError, ExitCode, TfauditError, UsageError

MODULE_SUFFIXES = (".tf", ".tofu", ".tf.json", ".tofu.json")
SKIP_DIRS = {".git", ".terraform", ".terragrunt-cache", "node_modules", ".venv", "__pycache__"}
_LOCAL_SOURCE = re.compile(r'^\s*source\s*=\s*"(\.{1,2}/[^"]*)"', re.MULTILINE)
_PLAN_SUMMARY = re.compile(r"^(Plan: .*|No changes\..*)$", re.MULTILINE)


# --- which root modules a set of changed files touches ----------------------------------------
def is_module_dir(d: Path) -> bool:
    try:
        return any(p.is_file() and p.name.endswith(MODULE_SUFFIXES) for p in d.iterdir())
    except OSError:
        return False


def module_dirs(repo: Path) -> list[Path]:
    out = []
    for dirpath, dirnames, filenames in os.walk(repo):
        dirnames[:] = [d for d in dirnames if d not in SKIP_DIRS and not d.startswith(".")]
        if any(f.endswith(MODULE_SUFFIXES) for f in filenames):
            out.append(Path(dirpath).resolve())
    return sorted(out)


def local_sources(module: Path) -> set[Path]:
    """Directories this module uses as local module sources."""
    found: set[Path] = set()
    for p in module.iterdir():
        if not p.name.endswith((".tf", ".tofu")) or not p.is_file():
            continue
        try:
            text = p.read_text("utf-8", errors="replace")
        except OSError:
            continue
        for m in _LOCAL_SOURCE.finditer(text):
            target = (module / m.group(1)).resolve()
            if target.is_dir():
                found.add(target)
    return found


@dataclass
class ModuleGraph:
    modules: list[Path]
    uses: dict[Path, set[Path]] = field(default_factory=dict)

    @classmethod
    def scan(cls, repo: Path) -> ModuleGraph:
        mods = module_dirs(repo)
        return cls(mods, {m: local_sources(m) for m in mods})

    @property
    def roots(self) -> list[Path]:
        used = set().union(*self.uses.values()) if self.uses else set()
        return [m for m in self.modules if m not in used]

    def reaches(self, root: Path, target: Path) -> bool:
        seen: set[Path] = set()
        todo = [root]
        while todo:
            m = todo.pop()
            if m == target:
                return True
            if m in seen:
                continue
            seen.add(m)
            todo += self.uses.get(m, set())
        return False


def changed_roots(files: Iterable[str], repo: Path) -> list[Path]:
    graph = ModuleGraph.scan(repo)
    modules = set(graph.modules)
    roots = graph.roots
    repo = repo.resolve()
    out: list[Path] = []
    for f in files:
        d = (repo / f).resolve().parent
        while d not in modules and d != repo and repo in d.parents:
            d = d.parent
        if d not in modules:
            continue
        for r in roots:
            if r not in out and graph.reaches(r, d):
                out.append(r)
    return sorted(out)


# --- tfaudit-config --------------------------------------------------------------------------
def check_configs(files: Sequence[str], say: Callable[[str], None]) -> int:
    from tfaudit.config import parse_config

    rc = 0
    for f in files:
        try:
            parse_config(Path(f))
        except ConfigError as e:
            say(str(e))  # names the file and the block already
            rc = int(ExitCode.USAGE)
        else:
            say(f"{f}: valid")
    return rc


# --- tfaudit-plan ----------------------------------------------------------------------------
@dataclass(frozen=True)
class PlanOptions:
    fail_on: str | None = None
    record: bool = False
    init: bool = True
    tf_args: tuple[str, ...] = ()
    tf_path: str | None = None


def analysis_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("tfaudit.analysis") is not None


@contextmanager
def _stdout_captured() -> Iterator[Callable[[], str]]:
    """What this process and its children write to stdout, captured at the file descriptor, so an
    in-process recorded plan shows what a captured `terraform plan` would (its summary line)."""
    sys.stdout.flush()
    saved = os.dup(1)
    with tempfile.TemporaryFile() as buf:
        os.dup2(buf.fileno(), 1)
        text: list[str] = []
        try:
            yield lambda: "".join(text)
        finally:
            sys.stdout.flush()
            os.dup2(saved, 1)
            os.close(saved)
            buf.seek(0)
            text.append(buf.read().decode("utf-8", "replace"))


def _recorded_plan(root: Path, plan_args: list[str], opts: PlanOptions, env: Mapping[str, str]) -> tuple[int, str, str]:
    """`tfaudit plan` in this process: (exit code, terraform's stdout, tfaudit's messages)."""
    import io

    from tfaudit.run.plan import run_plan
    from tfaudit.run.session import Invocation
    from tfaudit.ui.console import Console

    msgs = io.StringIO()
    inv = Invocation(command="plan", tf_args=tuple(plan_args), chdir=str(root), tf_path=opts.tf_path)
    with _stdout_captured() as out:
        try:
            rc = run_plan(inv, env, Console(out=msgs, err=msgs))
        except TfauditError as e:
            msgs.write(f"tfaudit: error: {e}\n")
            rc = int(e.exit_code)
    return rc, out(), msgs.getvalue()


def _analyze(root: Path, plan_file: str, opts: PlanOptions, env: Mapping[str, str]) -> tuple[int, str]:
    """`tfaudit analyze PLAN --fail-on` with root's rules, in this process: (exit code, its table)."""
    import io

    from tfaudit.analysis import analyse_input
    from tfaudit.analysis.engine import Analyzer
    from tfaudit.analysis.policy import Policy
    from tfaudit.analysis.formats import OutputFormat, render
    from tfaudit.config import load_config

    policy = Policy.from_config(load_config(env.get("TFAUDIT_CONFIG"), root))
    analyzer = Analyzer(policy)
    fail_on = opts.fail_on or env.get("TFAUDIT_FAIL_ON") or policy.settings.fail_on or None
    report = analyse_input(plan_file, analyzer, env=env, tf_path=opts.tf_path, chdir=str(root))
    out = io.StringIO()
    render(OutputFormat.TABLE, report, out, fail_on=fail_on, rules=analyzer.info)
    return (int(ExitCode.POLICY) if report.gate(fail_on).blocked else 0), out.getvalue()


def plan_root(root: Path, opts: PlanOptions, env: Mapping[str, str], say: Callable[[str], None],
              rel: str) -> int:
    """Plan and analyze one root module; the exit code says what stopped it (0: clean)."""
    from tfaudit.config import load_config
    from tfaudit.terraform.binary import detect

    load_config(env.get("TFAUDIT_CONFIG"), root)  # the rules analyze will use must parse: fail fast
    tf = detect(opts.tf_path, env, str(root))
    if opts.init and not (root / ".terraform").is_dir():
        res = tf.capture(["init", "-input=false", "-no-color"], timeout=None)
        if not res.ok:
            say(f"{rel}: terraform init failed:\n{res.stderr_text(4000)}")
            return res.returncode or int(ExitCode.FAILURE)
    with tempfile.TemporaryDirectory(prefix="tfaudit-hook-") as tmp:
        plan_file = str(Path(tmp) / "hook.tfplan")
        plan_args = ["-input=false", "-no-color", f"-out={plan_file}", *opts.tf_args]
        if opts.record:
            rc, out, err = _recorded_plan(root, plan_args, opts, env)
        else:
            res = tf.capture(["plan", *plan_args], timeout=None)
            rc, out, err = res.returncode, res.stdout.decode("utf-8", "replace"), res.stderr_text(4000)
        if rc != 0 or not Path(plan_file).is_file():
            say(f"{rel}: plan failed (exit {rc}):\n{err.strip()[:4000] or out[-4000:]}")
            return rc or int(ExitCode.FAILURE)
        summary = _PLAN_SUMMARY.findall(out)
        say(f"{rel}: {summary[-1] if summary else 'planned'}" + (" (recorded)" if opts.record else ""))
        if not analysis_available():
            return 0
        rc, text = _analyze(root, plan_file, opts, env)
        if text.strip():
            say("\n".join(f"  {line}" for line in text.strip().splitlines()))
        if rc:
            say(f"{rel}: blocked by tfaudit analyze (exit {rc})")
        return rc


def run_plan_hook(files: Sequence[str], opts: PlanOptions, env: Mapping[str, str], say: Callable[[str], None],
                  repo: Path | None = None) -> int:
    repo = (repo or Path.cwd()).resolve()
    if opts.fail_on and not analysis_available():
        raise UsageError("--fail-on needs 'tfaudit analyze', which this tfaudit does not have",
                         hint="upgrade tfaudit, or drop --fail-on from the hook's args")
    roots = changed_roots(files, repo)
    if not roots:
        say("tfaudit-plan: no root module among the changed files")
        return 0
    worst = 0
    for root in roots:
        rel = os.path.relpath(root, repo)
        try:
            rc = plan_root(root, opts, env, say, rel)
        except TfauditError as e:
            say(f"{rel}: error: {e}")
            rc = int(e.exit_code)
        # A policy block outranks a failure: it is the answer the user needs first.
        if rc == int(ExitCode.POLICY) or (rc and worst != int(ExitCode.POLICY)):
            worst = rc
    return worst
