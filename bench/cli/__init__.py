"""`bench`: a thin click CLI over the Python API (every command is one call into a module), its commands in
`data` (data, eval, models), `run` (run, runs) and `results` (profile, report, check)."""
from bench.cli.common import main, with_plugin_option
from bench.cli import data, results, run  # noqa: E402,F401 (each module adds its commands to `main`)

with_plugin_option(main)  # --plugin on every command (docs/models.md)

__all__ = ["main"]
