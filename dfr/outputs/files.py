"""Files and folders written safely: atomic files, staged folders, one run per output folder, output names.

Every writer in dfr goes through these helpers:

- :func:`atomic_path`: a temporary path beside the target; renamed onto it when the block
  ends, removed when it fails, so a reader never sees half a file;
- :func:`staged_folder`: the same for a whole output folder (:func:`staging_folder` and
  :func:`replace_folder` are its two halves, for writers that finish in another place);
- :func:`output_lock`: one dfr run at a time per output folder;
- :func:`unique_stems`: output names that fit any file system and never collide.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
from collections import Counter
from pathlib import Path
from typing import Iterator


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, overwrite: bool = True) -> Iterator[Path]:
    """Yield a temporary path in ``path``'s folder (same suffix) to write to; when the block
    ends it is renamed onto ``path``, when it raises it is removed and ``path`` is unchanged.

    Raises ``FileExistsError`` for an existing ``path`` unless ``overwrite``, and
    ``FileNotFoundError`` when its folder does not exist."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path}: file exists (use --overwrite / overwrite=True to replace it)")
    if not path.parent.is_dir():
        raise FileNotFoundError(f"{path.parent}: output folder does not exist")
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=path.suffix)
    os.close(handle)
    try:
        yield Path(temporary)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def staging_folder(out: Path) -> Path:
    """A new empty temporary folder beside ``out``, to be renamed onto it by :func:`replace_folder`."""
    out.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}."))


@contextlib.contextmanager
def staged_folder(out: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary folder beside ``out`` to write into; when the block ends it replaces
    ``out`` (:func:`replace_folder`), when it raises it is removed and ``out`` is unchanged."""
    out = Path(out)
    staging = staging_folder(out)
    try:
        yield staging
        replace_folder(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def replace_folder(source: Path, target: Path) -> None:
    """Rename ``source`` to ``target``; an existing ``target`` is moved aside first and removed
    only once ``source`` is in place, so a failure leaves one of the two whole."""
    if not target.exists():
        os.replace(source, target)
        return
    aside = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.replaced.")) / target.name
    os.replace(target, aside)
    try:
        os.replace(source, target)
    except BaseException:
        os.replace(aside, target)
        aside.parent.rmdir()
        raise
    shutil.rmtree(aside.parent, ignore_errors=True)


def check_output_folder(out: str | os.PathLike, overwrite: bool) -> Path:
    """Refuse a non-empty existing folder unless ``overwrite``; return the folder as a Path."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"{out}: exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise FileExistsError(f"{out}: folder is not empty (use --overwrite / overwrite=True to replace it)")
    return out


@contextlib.contextmanager
def output_lock(out: str | os.PathLike) -> Iterator[Path]:
    """Hold an exclusive lock on ``.<name>.lock`` next to ``out`` (created; removed at the end)
    for the block. Raises ``FileExistsError`` naming the other process when a second dfr run
    writes the same ``out``. Callers check ``out`` again inside the block, as a run before them
    may have written it. POSIX only; elsewhere a no-op."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    path = out.parent / f".{out.name}.lock"
    try:
        import fcntl
    except ImportError:  # Windows
        yield out
        return
    while True:
        handle = open(path, "a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "a process"
            handle.close()
            raise FileExistsError(f"{out}: another dfr run ({holder}) is writing this folder; wait for it or "
                                  "choose another output folder") from None
        if _same_file(handle, path):
            break
        handle.close()  # locked a file that the run before removed meanwhile: lock the new one
    with handle:
        try:
            handle.truncate(0)
            handle.write(f"process {os.getpid()}")
            handle.flush()
            yield out
        finally:
            path.unlink(missing_ok=True)


def _same_file(handle, path: Path) -> bool:
    """Whether the open ``handle`` is still the file at ``path``."""
    try:
        return os.stat(path).st_ino == os.fstat(handle.fileno()).st_ino
    except FileNotFoundError:
        return False


#: Longest output file stem, in bytes: room for ``_<index>``, a suffix and temporary-name parts
#: within the 255 bytes most file systems allow for a name.
MAX_STEM_BYTES = 200


def short_stem(stem: str) -> str:
    """``stem`` itself, or when longer than ``MAX_STEM_BYTES`` its start plus ``~`` and 8 hex
    digits of its SHA-1, so that distinct long names stay distinct."""
    raw = os.fsencode(stem)
    if len(raw) <= MAX_STEM_BYTES:
        return stem
    start = stem[:MAX_STEM_BYTES - 9]
    while len(os.fsencode(start)) > MAX_STEM_BYTES - 9:  # multi-byte characters
        start = start[:-1]
    return f"{start}~{hashlib.sha1(raw).hexdigest()[:8]}"


def unique_stems(names: list[str]) -> list[str]:
    """File stems without suffix, shortened to ``MAX_STEM_BYTES`` (:func:`short_stem`) and made
    unique by appending ``_<index>`` where they repeat."""
    stems = [short_stem(Path(name).stem) for name in names]
    repeated = {stem for stem, count in Counter(stems).items() if count > 1}
    return [f"{stem}_{index}" if stem in repeated else stem for index, stem in enumerate(stems)]

