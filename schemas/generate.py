"""Regenerate ``schemas/monitor_spec.schema.json`` from the pydantic model.

The monitor-spec schema is generated, never edited by hand: it is
``monitor.spec.MonitorSpec.model_json_schema()`` plus the ``$schema``, ``$id``
and ``title`` keys. Run after changing ``monitor/spec.py``::

    .venv/bin/python schemas/generate.py          # rewrite the file
    .venv/bin/python schemas/generate.py --check  # exit 1 if it is out of date

``tests/unit/test_schemas.py`` fails while the committed file differs from
what this script writes.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

SCHEMAS_DIR = Path(__file__).resolve().parent
ROOT = SCHEMAS_DIR.parent
if str(ROOT) not in sys.path:  # runnable from anywhere without installing the package
    sys.path.insert(0, str(ROOT))

MONITOR_SPEC_PATH = SCHEMAS_DIR / "monitor_spec.schema.json"
DRAFT = "https://json-schema.org/draft/2020-12/schema"
MONITOR_SPEC_ID = "https://streamdq.dev/schemas/monitor_spec.schema.json"
MONITOR_SPEC_TITLE = "streamdq monitor spec"


def monitor_spec_schema() -> dict[str, Any]:
    """The monitor-spec JSON Schema as a dict."""
    from monitor.spec import MonitorSpec

    schema = MonitorSpec.model_json_schema()
    schema["$schema"] = DRAFT
    schema["$id"] = MONITOR_SPEC_ID
    schema["title"] = MONITOR_SPEC_TITLE
    return schema


def render(schema: dict[str, Any]) -> str:
    """Canonical text of a schema file: sorted keys, indent 2, trailing newline."""
    return json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    text = render(monitor_spec_schema())
    if args == ["--check"]:
        current = MONITOR_SPEC_PATH.read_text(encoding="utf-8") if MONITOR_SPEC_PATH.exists() else None
        if current != text:
            print(f"{MONITOR_SPEC_PATH} is out of date; run: python schemas/generate.py", file=sys.stderr)
            return 1
        print(f"{MONITOR_SPEC_PATH} is up to date")
        return 0
    if args:
        print("usage: python schemas/generate.py [--check]", file=sys.stderr)
        return 2
    MONITOR_SPEC_PATH.write_text(text, encoding="utf-8")
    print(f"wrote {MONITOR_SPEC_PATH}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
