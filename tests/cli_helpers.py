"""Running the command line in-process, as the console script does."""

from steinbock_like.cli.main import main


def run(*args) -> int:
    """Run ``steinbock-like ARGS...`` and return its exit status (paths may be Path objects)."""
    try:
        main([str(arg) for arg in args])
    except SystemExit as exit_:
        return exit_.code
    return 0
