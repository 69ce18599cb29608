"""Re-record the example cassettes: start the local server, run the examples in record mode all.

python examples/record.py
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from openai_server import OpenAIServer  # noqa: E402


def main() -> int:
    with OpenAIServer(port=8765):
        env = {**os.environ, "OPENAI_API_KEY": "sk-FAKE-local-recording-key-0000"}
        command = [sys.executable, "-m", "pytest", "examples", "--chatresp-record-mode=all", "-q"]
        return subprocess.call(command, cwd=ROOT, env=env)


if __name__ == "__main__":
    raise SystemExit(main())
