"""Exceptions that the command line reports as one line, without a traceback."""


class SteinbockLikeError(Exception):
    """A problem the user can fix (bad input, missing file, wrong option).

    The command line prints ``str(error)`` on one line and exits non-zero; a
    traceback is shown only with ``--debug``.
    """


class InputError(SteinbockLikeError):
    """An input file is missing, unreadable or malformed.

    Parameters
    ----------
    path : path-like or None
        The offending file, named first in the message.
    problem : str
        What is wrong with it.
    """

    def __init__(self, path, problem: str):
        self.path = path
        self.problem = problem
        super().__init__(f"{path}: {problem}" if path is not None else problem)


class OutputExistsError(SteinbockLikeError):
    """Outputs exist and neither ``--overwrite`` nor ``--resume`` was given."""


class MissingToolError(SteinbockLikeError):
    """An external program or model is not installed where it was looked for."""


def describe_error(error: BaseException) -> str:
    """An unexpected exception as one line: its type and the first line of its message."""
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0]}" if text else type(error).__name__
