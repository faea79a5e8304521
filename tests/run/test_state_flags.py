"""-state=PATH and -state-out=PATH (the local backend's legacy flags): tfaudit reads the state terraform
reads and writes, not the backend's default terraform.tfstate (real terraform).

The bug these pin: tfaudit read terraform.tfstate (or `terraform state pull`, which takes no -state)
before and after, so outcomes were checked against a state terraform never touched and the
out-of-band check compared the wrong file.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from conftest import CliResult, read_ledger, require_terraform

pytestmark = [pytest.mark.slow, pytest.mark.terraform]

CONFIG = '''variable "gen" {
  type    = number
  default = 1
}

resource "terraform_data" "app" {
  input = "app-${var.gen}"
}

resource "terraform_data" "db" {
  input = "db"
}
'''


@pytest.fixture
def infra(tmp_path: Path, base_env: dict[str, str], keypair: tuple[Path, Path],
          run_tfaudit: Callable[..., CliResult]) -> dict[str, Any]:
    wd = tmp_path / "infra"
    wd.mkdir()
    (wd / "main.tf").write_text(CONFIG)
    env = {"TFAUDIT_SIGNING_KEY": str(keypair[0])}

    def terraform(*args: str) -> None:
        res = subprocess.run([require_terraform(), *args], cwd=wd, env=base_env, capture_output=True, text=True,
                             timeout=300, stdin=subprocess.DEVNULL)
        assert res.returncode == 0, res.stdout + res.stderr

    def tfaudit(*args: str) -> CliResult:
        res = run_tfaudit(*args, cwd=wd, env=env)
        assert res.returncode == 0, res.output
        return res

    terraform("init", "-input=false")
    # the default state holds another state altogether (another lineage, db alone): a decoy
    terraform("apply", "-auto-approve", "-input=false", "-target=terraform_data.db")
    return {"dir": wd, "terraform": terraform, "tfaudit": tfaudit, "ledger": wd / ".tfaudit" / "ledger.jsonl",
            "pub": keypair[1]}


def _pulled_sha256(path: Path) -> str:
    """A state's recorded digest: of the state as `terraform state pull` prints it (the file this
    terraform wrote, and a newline), the same form as the default local state's."""
    return hashlib.sha256(path.read_bytes() + b"\n").hexdigest()


def _file_ref(path: Path) -> dict[str, Any]:
    doc = json.loads(path.read_text())
    return {"serial": doc["serial"], "lineage": doc["lineage"], "sha256": _pulled_sha256(path)}


def _ref(ref: dict[str, Any] | None) -> dict[str, Any] | None:
    return None if ref is None else {k: ref[k] for k in ("serial", "lineage", "sha256")}


def _run(recs: list[dict[str, Any]], rtype: str) -> list[dict[str, Any]]:
    return [r for r in recs if r["type"] == rtype]


def test_apply_with_state_checks_outcomes_against_that_file(infra: dict[str, Any]) -> None:
    wd, tfaudit, terraform = infra["dir"], infra["tfaudit"], infra["terraform"]
    decoy = (wd / "terraform.tfstate").read_bytes()
    other = wd / "other.tfstate"

    first = tfaudit("apply", "-auto-approve", "-input=false", "-state=other.tfstate")
    assert "Apply complete! Resources: 2 added" in first.stdout
    recs = read_ledger(infra["ledger"])
    changed = _run(recs, "resource.changed")
    assert sorted((r["resource"]["address"], r["resource"]["status"]) for r in changed) == [
        ("terraform_data.app", "succeeded"), ("terraform_data.db", "succeeded")]
    finished = _run(recs, "run.finished")[-1]
    assert finished["outcome"]["status"] == "succeeded"
    assert finished["outcome"]["state"]["before"] is None  # other.tfstate did not exist yet
    assert _ref(finished["outcome"]["state"]["after"]) == _file_ref(other)
    assert finished["run"]["state_id"] == f"local:{other}"

    # an update through tfaudit: the state before is the state the first run left there
    second = tfaudit("apply", "-auto-approve", "-input=false", "-var=gen=2", "-state", "other.tfstate")
    assert "outside tfaudit" not in second.stderr
    recs = read_ledger(infra["ledger"])
    assert [r["resource"]["status"] for r in _run(recs, "resource.changed")[2:]] == ["succeeded"]
    finished = _run(recs, "run.finished")[-1]
    assert finished["outcome"]["state"]["before"] == _run(recs, "run.finished")[0]["outcome"]["state"]["after"]
    assert _ref(finished["outcome"]["state"]["after"]) == _file_ref(other)
    assert json.loads(other.read_text())["serial"] == finished["outcome"]["state"]["after"]["serial"]

    # changing the default state outside tfaudit is no change to this one
    terraform("apply", "-auto-approve", "-input=false", "-var=gen=98")
    decoy = (wd / "terraform.tfstate").read_bytes()
    quiet = tfaudit("plan", "-input=false", "-var=gen=2", "-state=other.tfstate")
    assert "outside tfaudit" not in quiet.stderr
    assert "No changes." in quiet.stdout  # terraform compared with other.tfstate, as tfaudit did

    # a change to other.tfstate outside tfaudit is found, and named
    terraform("apply", "-auto-approve", "-input=false", "-var=gen=3", "-state=other.tfstate")
    seen = tfaudit("plan", "-input=false", "-var=gen=3", "-state=other.tfstate")
    assert "state changed outside tfaudit: serial moved" in seen.stderr
    oob = _run(read_ledger(infra["ledger"]), "state.out_of_band")
    assert len(oob) == 1
    assert oob[0]["detail"]["resources"] == {"added": [], "removed": [], "changed": ["terraform_data.app"]}
    assert _ref(oob[0]["detail"]["observed"]) == _file_ref(other)
    assert oob[0]["run"]["state_id"] == f"local:{other}"

    # the default state file was never the one compared, and tfaudit left it alone
    assert (wd / "terraform.tfstate").read_bytes() == decoy
    lineage = json.loads(decoy)["lineage"]
    for rec in read_ledger(infra["ledger"]):
        assert lineage not in json.dumps(rec), rec["type"]


def test_state_out_is_the_state_after_and_the_next_runs_state_before(infra: dict[str, Any]) -> None:
    wd, tfaudit = infra["dir"], infra["tfaudit"]
    tfaudit("apply", "-auto-approve", "-input=false", "-state=a.tfstate")
    a_before = (wd / "a.tfstate").read_bytes()

    tfaudit("apply", "-auto-approve", "-input=false", "-var=gen=2", "-state=a.tfstate", "-state-out=b.tfstate")
    assert (wd / "a.tfstate").read_bytes() == a_before  # terraform read a, wrote b
    recs = read_ledger(infra["ledger"])
    assert [r["resource"]["status"] for r in _run(recs, "resource.changed")[2:]] == ["succeeded"]
    finished = _run(recs, "run.finished")[-1]
    assert _ref(finished["outcome"]["state"]["before"]) == _file_ref(wd / "a.tfstate")
    assert _ref(finished["outcome"]["state"]["after"]) == _file_ref(wd / "b.tfstate")
    assert finished["run"]["state_id"] == f"local:{wd / 'b.tfstate'}"

    # b's next run starts where this one left b: nothing out of band; and with nothing to apply
    # terraform still runs (it writes -state-out; tfaudit's no-change shortcut would not)
    nxt = tfaudit("apply", "-auto-approve", "-input=false", "-var=gen=2", "-state=b.tfstate", "-state-out=c.tfstate")
    assert "outside tfaudit" not in nxt.stderr
    assert "Apply complete! Resources: 0 added, 0 changed, 0 destroyed." in nxt.stdout
    assert (wd / "c.tfstate").read_bytes() == (wd / "b.tfstate").read_bytes()
    assert not _run(read_ledger(infra["ledger"]), "state.out_of_band")


def test_state_commands_and_destroy_read_the_state_file_given(infra: dict[str, Any]) -> None:
    wd, tfaudit = infra["dir"], infra["tfaudit"]
    tfaudit("apply", "-auto-approve", "-input=false", "-state=other.tfstate")
    rm = tfaudit("state", "rm", "-state=other.tfstate", "terraform_data.db")
    assert "outside tfaudit" not in rm.stderr
    changed = _run(read_ledger(infra["ledger"]), "state.changed")[-1]["detail"]
    assert changed["vanished"] == ["terraform_data.db"] and changed["appeared"] == []
    assert _ref(changed["state"]["after"]) == _file_ref(wd / "other.tfstate")

    gone = tfaudit("destroy", "-auto-approve", "-input=false", "-state=other.tfstate")
    assert "outside tfaudit" not in gone.stderr
    recs = read_ledger(infra["ledger"])
    assert [(r["resource"]["address"], r["resource"]["status"]) for r in _run(recs, "resource.changed")[2:]] == [
        ("terraform_data.app", "succeeded")]
    after = _run(recs, "run.finished")[-1]["outcome"]["state"]["after"]
    assert _ref(after) == _file_ref(wd / "other.tfstate") and after["resources"] == 0
    assert json.loads((wd / "terraform.tfstate").read_text())["resources"]  # the default state still holds its own


def test_state_mv_state_out_is_recorded_for_both_states(infra: dict[str, Any]) -> None:
    """`state mv -state=a -state-out=b` writes two files (terraform 1.11: a loses the resource, b
    gains it, each backed up): the record names b as its destination, so neither a's nor b's next
    run takes the move for a change outside tfaudit, and a real one to b is still found."""
    wd, tfaudit, terraform = infra["dir"], infra["tfaudit"], infra["terraform"]
    a, b = wd / "a.tfstate", wd / "b.tfstate"
    tfaudit("apply", "-auto-approve", "-input=false", "-state=a.tfstate")
    tfaudit("apply", "-auto-approve", "-input=false", "-state=b.tfstate", "-target=terraform_data.app")
    b_left = _run(read_ledger(infra["ledger"]), "run.finished")[-1]["outcome"]["state"]["after"]

    mv = tfaudit("state", "mv", "-state=a.tfstate", "-state-out=b.tfstate", "terraform_data.db", "terraform_data.db")
    assert "Successfully moved 1 object(s)." in mv.stdout and "outside tfaudit" not in mv.stderr
    assert [r["name"] for r in json.loads(b.read_text())["resources"]] == ["app", "db"]
    assert [r["name"] for r in json.loads(a.read_text())["resources"]] == ["app"]
    moved = _run(read_ledger(infra["ledger"]), "state.changed")[-1]
    assert moved["run"]["state_id"] == f"local:{a}"
    detail = moved["detail"]
    assert detail["changed"] is True and _ref(detail["state"]["after"]) == _file_ref(a)
    assert detail["moved"] == [{"from": "terraform_data.db", "to": "terraform_data.db"}]
    assert detail["vanished"] == [] and detail["appeared"] == []
    assert detail["destination"]["state_id"] == f"local:{b}"
    assert detail["destination"]["before"] == b_left
    assert _ref(detail["destination"]["after"]) == _file_ref(b)

    # the next runs on b and on a start where the move left them
    on_b = tfaudit("apply", "-auto-approve", "-input=false", "-state=b.tfstate")
    assert "outside tfaudit" not in on_b.stderr
    assert "Apply complete! Resources: 0 added, 0 changed, 0 destroyed." in on_b.stdout
    assert _run(read_ledger(infra["ledger"]), "run.finished")[-1]["outcome"]["state"]["before"] == \
        detail["destination"]["after"]
    on_a = tfaudit("apply", "-auto-approve", "-input=false", "-state=a.tfstate")
    assert "outside tfaudit" not in on_a.stderr
    assert "Apply complete! Resources: 1 added" in on_a.stdout  # db, which moved to b
    assert not _run(read_ledger(infra["ledger"]), "state.out_of_band")

    # b changed outside tfaudit: the next run on b says so
    terraform("apply", "-auto-approve", "-input=false", "-var=gen=5", "-state=b.tfstate")
    seen = tfaudit("plan", "-input=false", "-var=gen=5", "-state=b.tfstate")
    assert "state changed outside tfaudit: serial moved" in seen.stderr
    oob = _run(read_ledger(infra["ledger"]), "state.out_of_band")
    assert len(oob) == 1 and oob[0]["run"]["state_id"] == f"local:{b}"
    assert oob[0]["detail"]["resources"]["changed"] == ["terraform_data.app"]

    # and so does a move into b after another change there, before terraform moves anything
    terraform("apply", "-auto-approve", "-input=false", "-var=gen=6", "-state=b.tfstate")
    again = tfaudit("state", "mv", "-state=a.tfstate", "-state-out=b.tfstate", "terraform_data.db",
                    "terraform_data.db2")
    assert "state changed outside tfaudit: serial moved" in again.stderr
    recs = read_ledger(infra["ledger"])
    oob = _run(recs, "state.out_of_band")
    assert len(oob) == 2 and oob[1]["run"]["state_id"] == f"local:{b}"
    dest = _run(recs, "state.changed")[-1]["detail"]["destination"]
    assert dest["before"] == oob[1]["detail"]["observed"] and _ref(dest["after"]) == _file_ref(b)
    for state in ("a.tfstate", "b.tfstate"):
        quiet = tfaudit("plan", "-input=false", "-var=gen=6", f"-state={state}")
        assert "outside tfaudit" not in quiet.stderr, state
    assert len(_run(read_ledger(infra["ledger"]), "state.out_of_band")) == 2
    tfaudit("verify", str(infra["ledger"]), "--public-key", str(infra["pub"]))  # destination is in the schema
