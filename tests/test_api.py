"""The Python API: every name `bench` exports resolves, and `import bench` stays cheap (no torch)."""
import subprocess
import sys

import bench


def test_every_exported_name_resolves_to_the_function_it_names():
    for name in bench.__all__:
        obj = getattr(bench, name)
        assert getattr(obj, "__name__", name) == name, name
    assert bench.score_label_maps.__module__ == "bench.evaluate" and bench.create_model.__module__.startswith("architectures")


def test_import_bench_does_not_load_torch():
    code = "import sys, bench; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_unknown_name_is_an_attribute_error():
    try:
        bench.no_such_function
    except AttributeError as exc:
        assert "no_such_function" in str(exc)
    else:
        raise AssertionError("bench.no_such_function resolved")


def test_every_cli_option_is_described_and_every_command_shows_an_example():
    import click
    from click.testing import CliRunner

    from bench.cli import main

    def commands(cmd, path=()):
        if isinstance(cmd, click.Group):
            for name, sub in cmd.commands.items():
                yield from commands(sub, (*path, name))
        else:
            yield path, cmd

    for path, cmd in commands(main):
        undescribed = [p.opts[0] for p in cmd.params if isinstance(p, click.Option) and not p.help]
        assert not undescribed, f"bench {' '.join(path)}: {undescribed} without help"
        text = CliRunner().invoke(main, [*path, "--help"]).output
        assert "Example: bench " + path[0] in text, f"bench {' '.join(path)} --help shows no example"
