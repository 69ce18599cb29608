"""``python -m pytest_chatresp.cli``: the ``chatresp`` command."""

from __future__ import annotations

from .main import main

if __name__ == "__main__":
    raise SystemExit(main())
