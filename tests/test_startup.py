"""Start-up: ``--help`` of every command imports no heavy library (numbers: bench_startup.py)."""

import subprocess
import sys

HEAVY = ("numpy", "pandas", "scipy", "skimage", "tifffile", "h5py", "torch", "onnxruntime")

SCRIPT = f"""
import sys
import click
from steinbock_like.cli.main import cli, main

def paths(command, prefix):
    yield prefix
    if isinstance(command, click.Group):
        for name, sub in command.commands.items():
            yield from paths(sub, prefix + [name])

for path in paths(cli, []):
    try:
        main(path + ["--help"])
    except SystemExit as exit_:
        assert exit_.code in (0, None), (path, exit_.code)
    heavy = [m for m in {HEAVY!r} if m in sys.modules]
    if heavy:
        print("IMPORTED", " ".join(path) or "(root)", heavy)
        break
else:
    print("CLEAN")
"""


def test_help_of_every_command_imports_no_heavy_library():
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "CLEAN", result.stdout[-2000:]


def test_runner_and_options_import_no_heavy_library():
    code = (
        "import sys\n"
        "import steinbock_like.cli.options, steinbock_like.runner, steinbock_like.tools\n"
        f"print([m for m in {HEAVY!r} if m in sys.modules])\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.strip() == "[]", result.stdout + result.stderr
