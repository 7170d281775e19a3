"""Run the certseal app for the browser tests: ``python3 tests/browser/serve.py --port N --database PATH``.

Demo settings (the published demo secrets) on a SQLite file already migrated to head (the fixtures copy
the session's migrated template there; the app refuses any other); the public base URL is this server.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import uvicorn  # noqa: E402

from api.main import create_app  # noqa: E402
from api.settings import Settings  # noqa: E402


def main() -> None:
    """Start uvicorn on 127.0.0.1 with demo settings."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--database", required=True)
    args = parser.parse_args()
    base = f"http://127.0.0.1:{args.port}"
    settings = Settings.for_demo(database_url=f"sqlite:///{args.database}", public_base_url=base)
    uvicorn.run(create_app(settings), host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
