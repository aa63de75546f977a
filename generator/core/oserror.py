"""What to tell the user about an operating-system failure: the fix depends on the errno.

"Permission denied" wants a chmod, "No space left on device" wants free space, "Address already
in use" wants another port; one generic hint for all of them sends people the wrong way. Kept
out of errors.py, whose every edit changes the inputs of every cached result.
"""
from __future__ import annotations

import errno

_HINTS = {
    errno.ENOSPC: "the disk is full: free some space and run the command again",
    errno.EDQUOT: "the disk quota is used up: free some space and run the command again",
    errno.EACCES: "check the permissions of that path",
    errno.EPERM: "check the permissions of that path",
    errno.EROFS: "that file system is read-only: use a writable folder",
    errno.ENOENT: "check that the path exists",
    errno.ENOTDIR: "a part of that path is a file, not a folder",
    errno.EISDIR: "that path is a folder, not a file",
    errno.EMFILE: "too many files are open: close some programs and try again",
    errno.ENAMETOOLONG: "use a shorter path",
    errno.EIO: "the disk reported an input/output error: check the device",
}


def os_hint(exc: OSError, default: str = "check the path and its permissions") -> str:
    """The fix for ``exc``, by its errno."""
    return _HINTS.get(exc.errno, default)


def os_reason(exc: OSError) -> str:
    """The error's own words without its path ('No space left on device')."""
    return exc.strerror or str(exc) or type(exc).__name__


def with_path(exc: OSError, path: object) -> OSError:
    """``exc`` as an OSError that names ``path`` (a failed write() on an open file names none)."""
    if exc.filename is not None:
        return exc
    new = type(exc)(exc.errno, exc.strerror or str(exc), str(path)) if exc.errno else \
        OSError(errno.EIO, str(exc) or type(exc).__name__, str(path))
    return new
