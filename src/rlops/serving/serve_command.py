"""``rlops serve``: settings from flags (or a JSON file), then uvicorn with N workers.

With no token configured, decisions and outcomes are open and a one-off admin token is
generated and printed, so the admin routes are usable at once and never open.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from rlops.serving.auth import new_token
from rlops.serving.server import ADMIN_TOKEN_ENV, ENV, TOKENS_ENV, ServerConfig


def serve_command(
    *,
    config_file: Path | None,
    host: str,
    port: int,
    workers: int,
    overrides: dict[str, Any],
) -> None:
    import uvicorn

    data: dict[str, Any] = json.loads(config_file.read_text()) if config_file else {}
    config = ServerConfig.from_json(data)
    config = replace(config, **{k: v for k, v in overrides.items() if v is not None})
    if (
        config.tokens is None
        and not os.environ.get(TOKENS_ENV)
        and not os.environ.get(ADMIN_TOKEN_ENV)
    ):
        token = os.environ[ADMIN_TOKEN_ENV] = new_token()  # generated: shown once, here
        print(f"admin token for this server (set --tokens to configure): {token}", file=sys.stderr)
    os.environ[ENV] = json.dumps(config.to_json())
    uvicorn.run(
        "rlops.serving.server:app_from_env",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_level="warning",
        timeout_graceful_shutdown=10,
    )
