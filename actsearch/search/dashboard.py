"""``actsearch dashboard``: optuna-dashboard on a search's storage, with its artifacts.

The dashboard shows each trial's user attributes (expression, LaTeX, key, accuracy ± std, failure
reason, duplicate_of …) and, under "Artifacts", the f/f′ plot the search uploaded for it.
"""
from __future__ import annotations

import socket

from ..errors import ActsearchError
from .storage import artifact_dir, artifact_store, open_storage, resolve_storage

__all__ = ["serve", "free_port"]


def serve(storage: str | None = None, host: str = "127.0.0.1", port: int = 8080,
          artifacts: str | None = None, quiet: bool = False) -> None:
    """Run optuna-dashboard until interrupted (blocks)."""
    import optuna_dashboard  # start-up time: its web stack (~1.2 s) only for `actsearch dashboard`

    url = resolve_storage(storage)
    backend = open_storage(url, create=False)
    store = artifact_store(url, artifacts) if artifact_dir(url, artifacts).exists() or artifacts else None
    if not quiet:
        print(f"optuna-dashboard on {url} (artifacts: {artifact_dir(url, artifacts) if store else 'none'})")
        print(f"open http://{host}:{port}/dashboard/  — Ctrl-C to stop", flush=True)
    try:
        optuna_dashboard.run_server(backend, host=host, port=port, artifact_store=store)
    except OSError as exc:  # port in use, host not local …
        raise ActsearchError(f"cannot serve on {host}:{port}: {exc.strerror or exc} (try --port)") from None


def free_port(host: str = "127.0.0.1") -> int:
    """A port the OS says is free now (for tests and `--port 0`)."""
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])
