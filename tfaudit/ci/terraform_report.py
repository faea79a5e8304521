"""GitLab's Terraform report: the plan counts its merge request widget shows.

GitLab reads `artifacts: reports: terraform:` files holding `{"create": N, "update": N,
"delete": N}` (what its own template's `gitlab-terraform plan-json` writes); a replacement
counts as one create and one delete, as there. GitLab adds the job's name and link itself and
rejects other keys, so the file holds exactly these three.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path


def counts(planned: Mapping[str, int]) -> dict[str, int]:
    """create/update/delete from tfaudit's plan summary (create, update, delete, replace, ...)."""
    replace = int(planned.get("replace", 0))
    return {"create": int(planned.get("create", 0)) + replace,
            "update": int(planned.get("update", 0)),
            "delete": int(planned.get("delete", 0)) + replace}


def write(path: Path, planned: Mapping[str, int]) -> dict[str, int]:
    doc = counts(planned)
    path.write_text(json.dumps(doc) + "\n", encoding="utf-8")
    return doc
