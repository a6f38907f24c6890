"""Running the command line in-process, as the console script does."""

from steinbock_like.cli.main import main


def run(*args) -> int:
    """Run ``steinbock-like ARGS...`` and return its exit status (paths may be Path objects)."""
    try:
        main([str(arg) for arg in args])
    except SystemExit as exit_:
        return exit_.code
    return 0


def default_ctrl_c() -> None:
    """``preexec_fn`` for a child that the test stops with SIGINT: Ctrl-C's default
    handling, even where this test run inherited SIGINT ignored (a shell starts
    background jobs so, e.g. ``pytest ... &``; the child would ignore it too)."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)
