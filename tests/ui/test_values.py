"""hcl_value and the "Outputs:" block: each expected text is what terraform 1.11.4 printed for the same
value at the end of `terraform apply` (fixtures/outputs; tests/ui/test_values_e2e.py compares whole blocks)."""

from __future__ import annotations

import io
import json
from decimal import Decimal
from typing import Any

import pytest

from tfaudit.ui.stream import StreamRenderer
from tfaudit.ui.values import exact_outputs, go_quote, hcl_value, outputs_text

OBJ_NESTED = """{
  "a" = 1
  "key with space" = "q"
  "longer_key" = "v"
  "multi" = <<-EOT
  m1
  m2
  EOT
  "nested" = {
    "x" = true
    "yyyyyyy" = [
      1,
      "two",
      null,
    ]
    "zz" = {
      "deep" = "é"
    }
  }
}"""


@pytest.mark.parametrize(("value", "ty", "shown"), [
    ("café ñ 日本 😀", "string", '"café ñ 日本 😀"'),
    ('say "hi" and \\ back', "string", '"say \\"hi\\" and \\\\ back"'),
    ("a\tb\rc\x01d\x7f", "string", '"a\\tb\\rc\\x01d\\x7f"'),
    ("nbsp\u00a0ls\u2028bell\abs\bvt\vff\fesc\x1bsep\x1czw\u200bbom\ufeffpriv\ue000", "string",
     '"nbsp\\u00a0ls\\u2028bell\\abs\\bvt\\vff\\fesc\\x1bsep\\x1czw\\u200bbom\\ufeffpriv\\ue000"'),
    ("${x} %{y}", "string", '"${x} %{y}"'),
    ("<a href='x'>&</a>", "string", "\"<a href='x'>&</a>\""),
    ("", "string", '""'),
    ("line1\nline2 é\n", "string", "<<EOT\nline1\nline2 é\n\nEOT"),
    ("a\n EOT \nEOT_\nb", "string", "<<EOT__\na\n EOT \nEOT_\nb\nEOT__"),
    ("x\n\tEOT\t\ny", "string", "<<EOT_\nx\n\tEOT\t\ny\nEOT_"),
    ("\n", "string", "<<EOT\n\n\nEOT"),
    ("a\r\nb", "string", "<<EOT\na\r\nb\nEOT"),
    (12345678901234567890, "number", "12345678901234567890"),
    (10**100, "number", "1" + "0" * 100),
    (Decimal("0.00000015"), "number", "0.00000015"),
    (Decimal("1.5E-7"), "number", "0.00000015"),
    (1.5e-07, "number", "0.00000015"),  # a float (a stream parsed without Decimal): its shortest form
    (-7, "number", "-7"),
    (False, "bool", "false"),
    ([], ["tuple", []], "[]"),
    ([], ["list", "dynamic"], "tolist([])"),
    ([], ["set", "dynamic"], "toset([])"),
    ({}, ["map", "dynamic"], "tomap({})"),
    ({}, ["object", {}], "{}"),
    ([1, Decimal("2.5")], ["list", "number"], "tolist([\n  1,\n  2.5,\n])"),
    ({"a": ["x"], "b": []}, ["map", ["list", "string"]], 'tomap({\n  "a" = tolist([\n    "x",\n  ])\n  "b" = tolist([])\n})'),
    ({"": "4", "a b": "1", "multi\nkey": "6", 'with"quote': "3", "x.y": "5", "é": "2"}, ["map", "string"],
     'tomap({\n  "" = "4"\n  "a b" = "1"\n  <<-EOT\n  multi\n  key\n  EOT = "6"\n  "with\\"quote" = "3"\n'
     '  "x.y" = "5"\n  "é" = "2"\n})'),
    (["a\nb", "c"], ["tuple", ["string", "string"]], '[\n  <<-EOT\n  a\n  b\n  EOT,\n  "c",\n]'),
    ({"l1": {"l2": [{"l3": "a\nEOT\nb", "n": 15}]}}, None,
     '{\n  "l1" = {\n    "l2" = [\n      {\n        "l3" = <<-EOT_\n        a\n        EOT\n        b\n'
     '        EOT_\n        "n" = 15\n      },\n    ]\n  }\n}'),
    ([False, True], ["set", "bool"], "toset([\n  false,\n  true,\n])"),
    (["a", 1, True, None, {"k": "v"}, ["x"]], None,
     '[\n  "a",\n  1,\n  true,\n  null,\n  {\n    "k" = "v"\n  },\n  [\n    "x",\n  ],\n]'),
])
def test_a_value_is_shown_as_terraform_shows_it(value: Any, ty: Any, shown: str) -> None:
    assert hcl_value(value, ty) == shown


def test_nested_object_keys_are_quoted_sorted_and_not_aligned() -> None:
    value = {"nested": {"zz": {"deep": "é"}, "x": True, "yyyyyyy": [1, "two", None]}, "multi": "m1\nm2",
             "longer_key": "v", "key with space": "q", "a": 1}
    assert hcl_value(value) == OBJ_NESTED


def test_nulls_show_their_type_as_terraform_does() -> None:
    ty = ["object", {"b": "bool", "l": ["list", "dynamic"], "m": ["map", "dynamic"], "n": "number", "o": "dynamic",
                     "s": "string", "st": ["set", "dynamic"], "lo": ["list", ["object", {"a": "string"}]],
                     "ob": ["object", {"a": "string"}], "t": ["tuple", ["string", "number"]],
                     "sl": ["set", ["list", "string"]], "mm": ["map", ["map", "number"]]}]
    assert hcl_value(dict.fromkeys(ty[1]), ty) == """{
  "b" = tobool(null)
  "l" = tolist(null) /* of dynamic */
  "lo" = tolist(null) /* of object */
  "m" = tomap(null) /* of dynamic */
  "mm" = tomap(null) /* of map of number */
  "n" = tonumber(null)
  "o" = null
  "ob" = null /* object */
  "s" = tostring(null)
  "sl" = toset(null) /* of list of string */
  "st" = toset(null) /* of dynamic */
  "t" = null /* tuple */
}"""


def test_go_quote_escapes_what_go_does_not_print() -> None:
    assert go_quote("\x85\U000e0001\U0001f600") == '"\\u0085\\U000e0001\U0001f600"'


def test_numbers_of_a_stream_line_are_read_exactly() -> None:
    third = "0." + "3" * 154 + "5"
    line = ('{"@level":"info","@message":"Outputs: 1","outputs":{"t":{"sensitive":false,"type":"number","value":'
            + third + '}},"type":"outputs"}\n').encode()
    outputs = exact_outputs(line)
    assert outputs is not None and outputs_text(outputs) == f"t = {third}\n"
    out = io.StringIO()
    StreamRenderer(out, io.StringIO(), color=False).render(json.loads(line), line)
    assert out.getvalue() == f"\nOutputs:\n\nt = {third}\n"


def test_sensitive_outputs_and_names_in_order() -> None:
    outputs = {"secret": {"sensitive": True, "type": "string"}, "b_true": {"sensitive": False, "type": "bool",
                                                                           "value": True},
               "z_last": {"sensitive": False, "type": "string", "value": "zz\n"}}
    assert outputs_text(outputs) == "b_true = true\nsecret = <sensitive>\nz_last = <<EOT\nzz\n\nEOT\n"
