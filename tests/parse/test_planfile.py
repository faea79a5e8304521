"""tfaudit.parse.planfile: a saved plan read without `terraform show -json`, only when it surely
changes nothing and hides nothing; every other plan is left to terraform (real terraform plans)."""

from __future__ import annotations

import shutil
import subprocess
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from conftest import require_terraform
from tfaudit.parse.plan import parse_plan
from tfaudit.parse.planfile import _fields, unchanged_plan

pytestmark = [pytest.mark.slow, pytest.mark.terraform]


def _terraform(args: list[str], cwd: Path, env: dict[str, str]) -> str:
    res = subprocess.run([require_terraform(), *args], cwd=cwd, env=env, capture_output=True, text=True,
                         timeout=300, stdin=subprocess.DEVNULL)
    assert res.returncode == 0, res.stdout + res.stderr
    return res.stdout


@pytest.fixture
def applied(tf_workdir: Callable[[str], Path], base_env: dict[str, str]) -> Path:
    d = tf_workdir("noop-plain")
    _terraform(["apply", "-auto-approve"], d, base_env)
    return d


def _plan(d: Path, env: dict[str, str], *args: str) -> Path:
    _terraform(["plan", "-out=p.tfplan", *args], d, env)
    return d / "p.tfplan"


def test_a_plan_that_changes_nothing_reads_as_terraform_shows_it(applied: Path, base_env: dict[str, str]) -> None:
    path = _plan(applied, base_env, "-var", "n=3")
    ours = unchanged_plan(path)
    assert ours is not None
    shown = parse_plan(_terraform(["show", "-json", str(path)], applied, base_env))
    for name in ("format_version", "terraform_version", "errored", "applyable", "complete", "timestamp",
                 "output_changes", "sensitive_variables", "changes", "resource_drift"):
        assert getattr(ours, name) == getattr(shown, name), name
    assert ours.variable_names == {"n"}  # the variables given; show -json adds the declared ones
    assert [o.name for o in ours.output_changes] == ["names", "nested", "plain"]


@pytest.mark.parametrize(("case", "files", "args"), [
    ("a change", {}, ["-var", "gen=2"]),
    ("a resource to create", {}, ["-var", "n=4"]),
    ("a destroy plan", {}, ["-destroy"]),
    ("a refresh-only plan", {}, ["-refresh-only"]),
    ("a forced replacement", {}, ["-replace=terraform_data.item[0]"]),
    ("a target", {}, ["-target=terraform_data.item[0]"]),
    ("a move", {"moved.tf": "moved {\n  from = terraform_data.item[2]\n  to   = terraform_data.moved\n}\n"
                            "resource \"terraform_data\" \"moved\" {\n  input = { name = \"<2>&\\u00e9\", gen = 1 }\n}\n"},
     ["-var", "n=2"]),
    ("a forgotten resource", {"extra.tf": "removed {\n  from = terraform_data.extra\n"
                                          "  lifecycle {\n    destroy = false\n  }\n}\n"}, []),
    ("a check block", {"check.tf": 'check "sane" {\n  assert {\n    condition     = var.gen > 0\n'
                                   '    error_message = "gen must be positive"\n  }\n}\n'}, []),
    ("a variable declared sensitive", {"secret.tf": 'variable "token" {\n  type      = string\n'
                                                    '  default   = "hunter2-token"\n  sensitive = true\n}\n'}, []),
    ("an output declared sensitive", {"out.tf": 'output "s" {\n  value     = "x"\n  sensitive = true\n}\n'}, []),
])
def test_every_other_plan_is_left_to_terraform(applied: Path, base_env: dict[str, str], case: str,
                                               files: dict[str, str], args: list[str]) -> None:
    if "extra.tf" in files:  # first an extra resource, to forget
        (applied / "extra.tf").write_text('resource "terraform_data" "extra" {}\n')
        _terraform(["apply", "-auto-approve"], applied, base_env)
    for name, text in files.items():
        (applied / name).write_text(text)
    assert unchanged_plan(_plan(applied, base_env, *args)) is None, case


def test_a_module_that_says_sensitive_leaves_the_plan_to_terraform(applied: Path, base_env: dict[str, str]) -> None:
    """The root module never says `sensitive`; a child module's value reaches a resource: the value
    could reach an output, so the plan is left to terraform (whose JSON teaches tfaudit the secret)."""
    (applied / "m").mkdir()
    (applied / "m" / "main.tf").write_text('output "v" {\n  value     = "hunter2-module"\n  sensitive = true\n}\n')
    (applied / "mod.tf").write_text('module "m" {\n  source = "./m"\n}\n'
                                    'resource "terraform_data" "s" {\n  input = module.m.v\n}\n')
    _terraform(["init", "-input=false"], applied, base_env)
    _terraform(["apply", "-auto-approve"], applied, base_env)
    path = _plan(applied, base_env)
    assert not parse_plan(_terraform(["show", "-json", str(path)], applied, base_env)).changes
    assert unchanged_plan(path) is None
    # the same module without the word: read from the file
    (applied / "m" / "main.tf").write_text('output "v" {\n  value = "plain-module"\n}\n')
    _terraform(["apply", "-auto-approve"], applied, base_env)
    assert unchanged_plan(_plan(applied, base_env)) is not None


def _encode(fields: list[tuple[int, int | bytes]]) -> bytes:
    """A protobuf message of varint and length-delimited fields."""
    def varint(n: int) -> bytes:
        out = bytearray()
        while True:
            out.append((n & 0x7F) | (0x80 if n > 0x7F else 0))
            n >>= 7
            if not n:
                return bytes(out)
    return b"".join(varint(k << 3 | (2 if isinstance(v, bytes) else 0))
                    + (varint(len(v)) + v if isinstance(v, bytes) else varint(v)) for k, v in fields)


def _with_first_change(tfplan: bytes, edit: Callable[[list[tuple[int, int | bytes]]], None]) -> bytes:
    """tfplan with its first resource change's fields edited."""
    top = list(_fields(tfplan))
    i = next(i for i, (k, _) in enumerate(top) if k == 3)
    change = list(_fields(top[i][1]))  # type: ignore[arg-type]
    edit(change)
    top[i] = (3, _encode(change))
    return _encode(top)


def _in_change(number: int, value: bytes) -> Callable[[list[tuple[int, int | bytes]]], None]:
    def edit(fields: list[tuple[int, int | bytes]]) -> None:
        j = next(j for j, (k, _) in enumerate(fields) if k == 9)
        fields[j] = (9, fields[j][1] + _encode([(number, value)]))  # type: ignore[operator]
    return edit


def test_a_damaged_or_unknown_plan_file_is_left_to_terraform(applied: Path, base_env: dict[str, str],
                                                             tmp_path: Path) -> None:
    path = _plan(applied, base_env)
    assert unchanged_plan(path) is not None
    with zipfile.ZipFile(path) as z:
        members = {n: z.read(n) for n in z.namelist()}

    def variant(name: str, **replace: bytes) -> Path:
        out = tmp_path / name
        with zipfile.ZipFile(out, "w") as z:
            for n, data in {**members, **replace}.items():
                z.writestr(n, data)
        return out

    tfplan = members["tfplan"]
    assert unchanged_plan(variant("same.tfplan")) is not None  # the rewritten archive itself is fine
    assert _encode(list(_fields(tfplan))) == tfplan
    assert unchanged_plan(variant("re-encoded.tfplan", tfplan=_with_first_change(tfplan, lambda f: None))) is not None
    path_step = _encode([(1, _encode([(1, b"input")]))])  # a Path of one attribute step
    for what, edit in [
        ("after_sensitive_paths", _in_change(4, path_step)),
        ("before_sensitive_paths", _in_change(3, path_step)),
        ("importing", _in_change(5, _encode([(1, b"some-id")]))),
        ("generated_config", _in_change(6, b'input = "x"')),
        ("prev_run_addr", lambda f: f.append((14, b"terraform_data.old"))),
        ("deposed_key", lambda f: f.append((7, b"00000001"))),
        ("required_replace", lambda f: f.append((11, path_step))),
    ]:
        assert unchanged_plan(variant(f"{what}.tfplan", tfplan=_with_first_change(tfplan, edit))) is None, what
    assert unchanged_plan(variant("unknown-field.tfplan", tfplan=tfplan + b"\xb8\x02\x01")) is None  # field 39
    assert unchanged_plan(variant("truncated.tfplan", tfplan=tfplan[:-3])) is None
    assert unchanged_plan(variant("fixed64.tfplan", tfplan=tfplan + b"\x09" + bytes(8))) is None
    assert unchanged_plan(variant("version-4.tfplan", tfplan=b"\x08\x04" + tfplan[2:])) is None
    assert tfplan.startswith(b"\x08\x03")  # tfplan's format version 3, the one this reader knows
    other = tfplan.replace(b"1.11.4", b"1.12.0")
    assert other != tfplan and unchanged_plan(variant("1.12.tfplan", tfplan=other)) is None
    without = {n: d for n, d in members.items() if not n.startswith("tfconfig/")}
    bare = tmp_path / "no-config.tfplan"
    with zipfile.ZipFile(bare, "w") as z:
        for n, data in without.items():
            z.writestr(n, data)
    assert unchanged_plan(bare) is None  # no configuration to rule out a sensitive variable
    broken = tmp_path / "broken.tfplan"
    broken.write_bytes(path.read_bytes()[:100])
    assert unchanged_plan(broken) is None
    assert unchanged_plan(tmp_path / "missing.tfplan") is None
    shutil.copy(path, tmp_path / "copy.tfplan")
    assert unchanged_plan(tmp_path / "copy.tfplan") is not None
