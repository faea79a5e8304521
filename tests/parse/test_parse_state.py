"""tfaudit.parse.state against the real-world corpus and a state written by real terraform."""

from __future__ import annotations

import codecs
import csv
import hashlib
import json
import re
from pathlib import Path

import pytest

from tfaudit.errors import StateError
from tfaudit.parse import State, load_state, parse_state

from corpus import CORPUS, corpus_file as _corpus, manifest_rows as _rows, needs_corpus  # noqa: F401
FIXTURES = Path(__file__).parents[2] / "fixtures" / "parse"
REAL_STATE = FIXTURES / "tf1.11.4-after-failed-apply.tfstate"


STATE_ROWS = _rows("state")
ENCRYPTED = [r for r in STATE_ROWS if "encrypted-state" in r["notes"]]
READABLE = [r for r in STATE_ROWS if r not in ENCRYPTED]


def _ids(rows: list[dict[str, str]]) -> list[str]:
    return [r["path"] for r in rows]


def _expected_instances(notes: str) -> int:
    # v4: "resources=R instances=I"; legacy: "legacy modules=M resources=R"; show -json: "resources=R".
    for pattern in (r"instances=(\d+)", r"legacy modules=\d+ resources=(\d+)", r"resources=(\d+)"):
        match = re.search(pattern, notes)
        if match:
            return int(match.group(1))
    return 0  # "empty state"


def _expected_version(notes: str) -> int | None:
    match = re.search(r"format: tfstate version=(\d+)", notes)
    return int(match.group(1)) if match else None


@needs_corpus
@pytest.mark.parametrize("row", READABLE, ids=_ids(READABLE))
def test_corpus_state_matches_manifest(row: dict[str, str]) -> None:
    path = _corpus(row["path"])
    state = load_state(path)
    assert state is not None
    assert len(state.resources) == _expected_instances(row["notes"])
    assert state.version == _expected_version(row["notes"])
    assert state.terraform_version == (row["terraform_version"] or None)
    assert state.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


@needs_corpus
@pytest.mark.parametrize("row", ENCRYPTED, ids=_ids(ENCRYPTED))
def test_corpus_encrypted_state_is_refused_with_what_to_do(row: dict[str, str]) -> None:
    path = _corpus(row["path"])
    with pytest.raises(StateError) as info:
        load_state(path)
    assert info.value.message == (f"{path}: state is encrypted (OpenTofu state encryption); "
                                  "tfaudit needs the decrypted state")
    assert info.value.hint is not None and "tofu state pull" in info.value.hint


@needs_corpus
def test_legacy_v1_addresses_use_count_brackets() -> None:
    state = load_state(_corpus("hashicorp__terraform/statefile-roundtrip_v1-simple.tfstate"))
    assert state is not None
    assert (state.version, state.serial, state.lineage) == (1, 1, None)
    assert state.addresses == {"null_resource.bar", "null_resource.foo[0]", "null_resource.foo[1]"}
    assert state.outputs == ("numbers",)


@needs_corpus
def test_legacy_v3_modules_become_module_addresses() -> None:
    state = load_state(_corpus("hashicorp__terraform/statefile-roundtrip_v3-grabbag.tfstate"))
    assert state is not None
    assert (state.serial, state.lineage) == (8, "0f5b2ff9-6ff5-8e9e-1f81-aa3ce9a483eb")
    modules = {r.module for r in state.resources}
    assert None in modules and any(m and m.startswith("module.") for m in modules)
    assert all(r.address.startswith(f"{r.module}.") for r in state.resources if r.module)


@needs_corpus
def test_v4_for_each_module_instances() -> None:
    state = load_state(_corpus("hashicorp__terraform/statefile-roundtrip_v4-modules.tfstate"))
    assert state is not None
    raw = json.loads(_corpus("hashicorp__terraform/statefile-roundtrip_v4-modules.tfstate").read_text())
    for res in raw["resources"]:
        for inst in res["instances"]:
            key = inst.get("index_key")
            suffix = "" if key is None else f'["{key}"]' if isinstance(key, str) else f"[{key}]"
            base = f"{res['type']}.{res['name']}" if res["mode"] == "managed" else f"data.{res['type']}.{res['name']}"
            expected = f"{res['module']}.{base}{suffix}" if res.get("module") else f"{base}{suffix}"
            assert expected in state.addresses


@needs_corpus
@pytest.mark.parametrize(("rel", "terraform_version"), [
    ("hashicorp__terraform/statefile-roundtrip_v4-future.tfstate", "999.0.0"),
    ("snyk__driftctl/v4_invalid_version.tfstate", "invalid"),
])
def test_odd_terraform_version_is_recorded_not_rejected(rel: str, terraform_version: str) -> None:
    state = load_state(_corpus(rel))
    assert state is not None and state.terraform_version == terraform_version and len(state.resources) > 0


@needs_corpus
def test_show_json_state_has_no_lineage_or_serial() -> None:
    state = load_state(_corpus("hashicorp__terraform/show-json-state_modules.state-values.json"))
    assert state is not None
    assert (state.version, state.format_version, state.serial, state.lineage) == (None, "1.0", None, None)
    assert state.outputs == ("test",)
    assert any(r.module for r in state.resources)


@needs_corpus
@pytest.mark.parametrize(("rel", "looks_like"), [
    ("hashicorp__terraform-json/basic.plan.json", "looks like a plan from 'terraform show -json PLANFILE', not a state"),
    ("retailnext__tf-report-action/apply-success-real.jsonl", "holds 8 concatenated JSON documents"),
])
def test_other_documents_are_not_states(rel: str, looks_like: str) -> None:
    with pytest.raises(StateError, match=re.escape(looks_like)):
        load_state(_corpus(rel))


@pytest.mark.parametrize("version", [5, 42])
def test_future_state_format_version_is_refused(version: int) -> None:
    data = json.dumps({"version": version, "serial": 1, "lineage": "l", "resources": []}).encode()
    with pytest.raises(StateError, match=f"^s.tfstate: unsupported state format version {version} "):
        parse_state(data, source="s.tfstate")


@pytest.mark.parametrize("version", [0, -1, "4", True])
def test_nonsense_state_version_is_refused(version: object) -> None:
    data = json.dumps({"version": version, "serial": 1, "lineage": "l", "resources": []}).encode()
    with pytest.raises(StateError, match="state version is not a positive whole number"):
        parse_state(data)


@pytest.mark.parametrize("data", [b"", b"\n", b"   \r\n", codecs.BOM_UTF8, ""])
def test_no_state_is_none(data: bytes | str) -> None:
    assert parse_state(data) is None


def test_invalid_json_state_names_the_position_only() -> None:
    data = b'{"version": 4, "lineage": "abc", "outputs": {"password": {"value": "hunter2"}'
    with pytest.raises(StateError) as info:
        parse_state(data, source="terraform state pull")
    assert info.value.message.startswith("terraform state pull: not valid JSON (")
    assert "hunter2" not in str(info.value)


def test_missing_file_is_a_state_error(tmp_path: Path) -> None:
    with pytest.raises(StateError, match="cannot read"):
        load_state(tmp_path / "nope.tfstate")


# --- terraform 1.11.4 `state pull` after a failed apply (fixtures/parse/make_fixtures.sh) -----------
@pytest.fixture(scope="module")
def real_state() -> State:
    state = parse_state(REAL_STATE.read_bytes(), source="terraform state pull")
    assert state is not None
    return state


def test_real_state_metadata(real_state: State) -> None:
    raw = json.loads(REAL_STATE.read_text())
    assert (real_state.version, real_state.terraform_version) == (4, "1.11.4")
    assert (real_state.serial, real_state.lineage) == (raw["serial"], raw["lineage"])
    assert real_state.outputs == ("keep_id", "token")
    assert real_state.sha256 == hashlib.sha256(REAL_STATE.read_bytes()).hexdigest()


def test_real_state_instances(real_state: State) -> None:
    # after_bad never ran; stuck kept its old object because its delete failed.
    assert real_state.addresses == {
        "terraform_data.bad[0]", "terraform_data.cbd", "terraform_data.keep", "terraform_data.secret",
        "terraform_data.stuck", "terraform_data.swap", "terraform_data.updated",
        'module.child["x"].terraform_data.inner["a"]', 'module.child["x"].terraform_data.inner["b"]',
    }
    tainted = {r.address for r in real_state.resources if r.tainted}
    assert tainted == {"terraform_data.bad[0]"}
    inner = next(r for r in real_state.resources if r.address.endswith('inner["a"]'))
    assert (inner.module, inner.index, inner.provider) == (
        'module.child["x"]', "a", 'provider["terraform.io/builtin/terraform"]')


def test_one_changed_byte_changes_the_hash(real_state: State) -> None:
    data = REAL_STATE.read_bytes().replace(b'"serial": ', b'"serial":  ', 1)
    other = parse_state(data)
    assert other is not None and other.serial == real_state.serial and other.sha256 != real_state.sha256


def test_deposed_objects_are_separate_entries() -> None:
    doc = json.loads(REAL_STATE.read_text())
    cbd = next(r for r in doc["resources"] if r["name"] == "cbd")
    cbd["instances"].append({**cbd["instances"][0], "deposed": "00000001"})
    state = parse_state(json.dumps(doc).encode())
    assert state is not None
    entries = [r for r in state.resources if r.address == "terraform_data.cbd"]
    assert sorted((r.deposed or "") for r in entries) == ["", "00000001"]
    assert "terraform_data.cbd" in state.addresses
