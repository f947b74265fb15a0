"""Write files atomically: a reader never sees a half-written file.

Every file the project writes (converted checkpoints, generated data sets,
ONNX exports, analysis reports) goes through :func:`write_atomically`: the
content is written to a temporary file in the target's folder, optionally
checked, then renamed over the target (``os.replace``, atomic on POSIX and
Windows within one file system). An interrupted or failed write leaves the
old file, or none, and no temporary file behind.
"""
from __future__ import annotations

import os
import os.path as osp
import tempfile
from typing import Callable, Optional


def current_umask() -> int:
    """The process's umask (read by setting it and setting it back)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_atomically(path: str | os.PathLike,
                     write: Callable[[str], None],
                     validate: Optional[Callable[[str], None]] = None,
                     fsync: bool = False) -> str:
    """Call ``write(tmp_path)``, then rename ``tmp_path`` to ``path``.

    Args:
        path: the target; its folder is created if missing.
        write: writes the whole content to the path it is given (a
            temporary file that keeps ``path``'s suffix: matplotlib and
            onnx pick the format from it).
        validate: checks the complete temporary file before it takes the
            final name; raising keeps ``path`` as it was.
        fsync: flush the file to disk before the rename (checkpoints: a
            power cut then leaves the old file or the complete new one).

    Returns:
        ``path`` as a string.

    The file gets the permissions a plain ``open`` would give it (0666 less
    the umask; ``mkstemp`` makes 0600). On any failure, even
    ``KeyboardInterrupt``, the temporary file is removed and the error
    raised.
    """
    path = os.fspath(path)
    folder = osp.dirname(osp.abspath(path))
    os.makedirs(folder, exist_ok=True)
    name = osp.basename(path)
    descriptor, tmp_path = tempfile.mkstemp(
        prefix=f'.{name}.', suffix='.tmp' + osp.splitext(name)[1], dir=folder)
    os.close(descriptor)
    try:
        write(tmp_path)
        if validate is not None:
            validate(tmp_path)
        if fsync:
            with open(tmp_path, 'rb+') as written:
                os.fsync(written.fileno())
        os.chmod(tmp_path, 0o666 & ~current_umask())
        os.replace(tmp_path, path)
    except BaseException:
        if osp.exists(tmp_path):
            os.unlink(tmp_path)
        raise
    return path
