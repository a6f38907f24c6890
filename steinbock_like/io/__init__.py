"""Every file type the toolkit reads or writes; see ``docs/file-types.md``.

Readers validate and raise :class:`steinbock_like.errors.InputError` naming the
file; writers are atomic (see :mod:`steinbock_like.io.atomic`).
"""
