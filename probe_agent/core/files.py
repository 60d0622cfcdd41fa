"""Files a probes file names (CA bundles, certificates, keys, password and credential files), read
as warily as the probes file itself.

A path in a config is outside data: it may lead to a FIFO (opening it waits for a writer
forever, and a reload waiting on it never ends), a device (`/dev/zero` reads forever), a socket
or a directory. So a named file must be a regular file (a symlink to one is fine: Kubernetes
mounts Secrets that way) of at most `max_bytes`, checked before any library opens it; what the
agent reads itself is opened without blocking and read no further than the limit.

Imports nothing of probe-agent's: every layer may use it.
"""

from __future__ import annotations

import os
import stat

_DEV_NULL = os.makedev(1, 3)  # Linux's null device
MAX_NAMED_FILE_BYTES = 1024 * 1024  # a CA bundle is ~200 KB; keys, passwords and .creds are far smaller


class NamedFileError(ValueError):
    """A named file cannot be used; the message starts with the field that names it."""


def _kind(mode: int) -> str:
    for test, kind in (
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISDIR, "a directory"),
    ):
        if test(mode):
            return kind
    return "not a regular file"


def _check(st: os.stat_result, path: str, field: str, max_bytes: int) -> None:
    if stat.S_ISCHR(st.st_mode) and st.st_rdev == _DEV_NULL:
        return  # /dev/null: an empty file by another name (`password_file: /dev/null`, no password)
    if not stat.S_ISREG(st.st_mode):
        raise NamedFileError(f"{field}: {path} is {_kind(st.st_mode)}, not a regular file")
    if st.st_size > max_bytes:
        raise NamedFileError(f"{field}: {path} is {st.st_size:,} bytes, over the limit of {max_bytes:,}")


def check_named_file(path: str, field: str, max_bytes: int = MAX_NAMED_FILE_BYTES, missing_ok: bool = False) -> None:
    """NamedFileError unless `path` is a regular file of at most max_bytes (or, with missing_ok,
    is not there: whoever builds the probe says so). Only stats it: never opens, so never blocks
    on a FIFO."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        if missing_ok:
            return
        raise NamedFileError(f"{field}: cannot load {path}: No such file or directory") from None
    except OSError as exc:
        raise NamedFileError(f"{field}: cannot load {path}: {exc.strerror or exc}") from None
    _check(st, path, field, max_bytes)


def read_named_file(path: str, field: str, max_bytes: int = MAX_NAMED_FILE_BYTES) -> bytes:
    """The bytes of a regular file of at most max_bytes, else NamedFileError naming the field.
    Opened non-blocking, so a FIFO swapped in after a check cannot hold the reader either."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError as exc:
        raise NamedFileError(f"{field}: cannot load {path}: {exc.strerror or exc}") from None
    try:
        _check(os.fstat(fd), path, field, max_bytes)
        with os.fdopen(fd, "rb", closefd=False) as file:
            data = file.read(max_bytes + 1)
    except OSError as exc:
        raise NamedFileError(f"{field}: cannot load {path}: {exc.strerror or exc}") from None
    finally:
        os.close(fd)
    if len(data) > max_bytes:  # it grew between the stat and the read
        raise NamedFileError(f"{field}: {path} is over the limit of {max_bytes:,} bytes")
    return data
