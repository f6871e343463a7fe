"""Write deploy/k8s/configmap.yaml: the ConfigMap streamdq-spec holding deploy/monitor.yaml as it is.

    python deploy/k8s/configmap.py          # rewrite it
    python deploy/k8s/configmap.py --check  # exit 1 if it is out of date (tests/unit/test_k8s.py does this)
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SPEC = HERE.parent / "monitor.yaml"
OUT = HERE / "configmap.yaml"

HEADER = """\
# The monitor spec the workers read (/etc/streamdq/monitor.yaml). Its content is deploy/monitor.yaml
# (tests/unit/test_k8s.py fails when the two differ); regenerate after editing the spec:
#   python deploy/k8s/configmap.py
apiVersion: v1
kind: ConfigMap
metadata:
  name: streamdq-spec
  labels:
    app.kubernetes.io/name: streamdq
data:
  monitor.yaml: |
"""


def render(spec_text: str) -> str:
    return HEADER + "".join(f"    {line}" if line.strip() else "\n" for line in spec_text.splitlines(keepends=True))


def main() -> int:
    text = render(SPEC.read_text(encoding="utf-8"))
    if "--check" in sys.argv[1:]:
        if OUT.read_text(encoding="utf-8") != text:
            print(f"{OUT} is out of date with {SPEC}: python deploy/k8s/configmap.py", file=sys.stderr)
            return 1
        return 0
    OUT.write_text(text, encoding="utf-8")
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
