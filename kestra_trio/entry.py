"""The `kestra-trio` console script. Kept import-free so that a Ctrl+C arriving while the CLI's
modules are still loading (the first ~100 ms) ends with exit 130, not a traceback."""

from __future__ import annotations


def main() -> None:
    try:
        from kestra_trio.cli import main as cli_main
    except KeyboardInterrupt:
        raise SystemExit(130) from None
    cli_main()
