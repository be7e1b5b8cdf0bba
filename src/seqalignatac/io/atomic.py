"""Atomic outputs: write to a temporary name beside the target, rename when complete.

An interrupted run therefore never leaves a file that looks finished.  A step that writes a
folder publishes it as a unit with :func:`publish_dir` (all-new or all-old).
"""

from __future__ import annotations

import contextlib
import fcntl
import glob
import json
import logging
import os
import shutil
import stat
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

STAGING_SUFFIX = ".staging"  # hidden sibling ``.<name>.staging``: the step's outputs while it runs
OLD_SUFFIX = ".old"  # hidden sibling ``.<name>.old``: the previous outputs during the swap
LOCK_SUFFIX = ".lock"  # hidden sibling ``.<name>.lock``: one writer per folder


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, is_dir: bool = False) -> Iterator[Path]:
    """Yield a temporary path in the target's folder; move it onto ``path`` on success.

    On an exception the temporary file (or folder) is removed and ``path`` is untouched.
    The temporary name keeps the target's suffix so writers that look at it (h5ad, npz)
    behave the same.
    """
    target = Path(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        if is_dir:
            recover_dir(target)  # a folder swap that a kill cut in two
        else:
            _remove_orphans(target)
        fd, tmp_name = tempfile.mkstemp(prefix=_temp_prefix(target), suffix="".join(target.suffixes), dir=target.parent)
    except OSError as exc:
        _raise_as_fault_of(exc, target)
        raise
    # Held while we write: a temp file nobody holds was left by a killed writer (_remove_orphans).
    fcntl.flock(fd, fcntl.LOCK_EX)
    tmp = Path(tmp_name)
    if is_dir:
        tmp.unlink()
        tmp.mkdir()
    try:
        yield tmp
        # mkstemp/mkdtemp create owner-only entries; published files must follow the umask.
        os.chmod(tmp, (0o777 if is_dir else 0o666) & ~_umask())
        if is_dir and target.is_dir():
            _swap(tmp, target, _sibling(target, OLD_SUFFIX))
        else:
            os.replace(tmp, target)
    except BaseException as exc:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)
        _raise_as_fault_of(exc, target)
        raise
    finally:
        os.close(fd)


def _temp_prefix(target: Path) -> str:
    return f".{target.name}.tmp-"


def _remove_orphans(target: Path) -> None:
    """Delete the temp files of ``target`` that killed writers left (a live writer holds its lock)."""
    for orphan in target.parent.glob(glob.escape(_temp_prefix(target)) + "*"):
        try:
            fd = os.open(orphan, os.O_RDONLY)
        except OSError:  # gone meanwhile, or a folder
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            continue  # another process is writing it right now
        else:
            log.info("%s: removing %s, left by a killed run", target, orphan.name)
            orphan.unlink(missing_ok=True)
        finally:
            os.close(fd)


def _raise_as_fault_of(exc: BaseException, path: Path) -> None:
    """A full or read-only disk is reported for the file the caller named, not our temp name."""
    from seqalignatac.errors import renamed_fault

    fault = renamed_fault(exc, path) if isinstance(exc, Exception) else None
    if fault is not None:
        raise fault from exc


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_bytes(path: str | os.PathLike, data) -> None:
    """Serialised in memory first, written here: libraries whose own writers report a full disk
    without an errno (torch.save, safetensors) then fail as a plain OSError naming ``path``."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            fh.write(data)


def write_json(path: str | os.PathLike, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")


def write_h5ad(adata, path: str | os.PathLike, compression: str | None = "gzip") -> None:
    from seqalignatac.io.hdf5 import write_h5ad as write_h5ad_file

    with atomic_path(path) as tmp:
        write_h5ad_file(adata, tmp, compression=compression)


def write_csv(df, path: str | os.PathLike, **kwargs) -> None:
    """Every CSV/TSV table we write: spreadsheet formulas in text cells are neutralised first."""
    from seqalignatac.io.tables import neutralise_formulas

    with atomic_path(path) as tmp:
        neutralise_formulas(df).to_csv(tmp, **kwargs)


# ----------------------------------------------------------------------------- folders as a unit


def _sibling(target: Path, suffix: str) -> Path:
    return target.parent / f".{target.name}{suffix}"


def staging_path(outdir: str | os.PathLike) -> Path:
    """Where :func:`publish_dir` stages ``outdir``'s next outputs (kept by a killed resumable step).

    A hidden sibling, so the swap is two renames; inside the folder when the folder itself cannot
    be renamed (a mount point, the working directory), so its entries can be moved in one by one.
    """
    target = Path(outdir)
    target = target.resolve() if target.is_symlink() else target
    return _sibling(target, STAGING_SUFFIX) if _swappable(target) else target / f".{STAGING_SUFFIX[1:]}"


def _swap(new: Path, target: Path, old: Path) -> None:
    """Put folder ``new`` at ``target``; the previous ``target`` is deleted only once ``new`` is in.

    A kill between the two renames leaves ``old`` and no ``target``: :func:`recover_dir` renames
    it back, so readers see the previous outputs, never a mix.
    """
    if target.exists():
        os.replace(target, old)
        os.replace(new, target)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(new, target)


def recover_dir(outdir: str | os.PathLike) -> None:
    """Undo what a killed publish of ``outdir`` left behind (call under the folder's lock)."""
    target = Path(outdir)
    old = _sibling(target, OLD_SUFFIX)
    if old.is_dir():
        if target.exists():
            log.warning("%s: removing the previous outputs a killed run left in %s", target, old.name)
            shutil.rmtree(old)
        else:
            log.warning(
                "%s: restoring the previous outputs from %s (a run was killed while publishing)", target, old.name
            )
            os.replace(old, target)


def _link_or_copy(src: str, dst: str) -> None:
    # Hard links are safe: every writer replaces files by rename, never in place.
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


@contextlib.contextmanager
def publish_dir(
    outdir: str | os.PathLike,
    owned: Iterable[str] | None = None,
    resume: bool = False,
    keep_if: str | None = None,
) -> Iterator[Path]:
    """Yield a staging folder for a step's outputs; on success swap it in as ``outdir`` at once.

    - ``owned``: names (files or folders) the step writes.  Other entries already in ``outdir``
      (the user's own files, another pair's report) are carried into the new folder; owned names
      that the new outputs lack are dropped, so a stale ``metrics.json`` never survives.
      ``None``: the step owns the whole folder.
    - ``resume``: start from the staging folder a killed run left (checkpoints), or else from a
      copy of the published folder; without it, leftovers are removed first (with a log line).
    - ``keep_if``: keep the staging folder when the step fails or is interrupted and it holds this
      entry (stage 1's ``checkpoint``, for ``resume``); otherwise it is removed.

    One writer at a time: a second one gets :class:`~seqalignatac.io.locks.FolderBusy` at once.
    """
    from seqalignatac.errors import InputError
    from seqalignatac.io.locks import FolderLock

    target = Path(outdir)
    if target.is_symlink():  # publish where the link points; the link itself stays
        target = target.resolve()
    if target.exists() and not target.is_dir():
        raise InputError("output path exists and is not a folder; choose another --outdir", target)
    stage = staging_path(target)
    swap = stage.parent != target
    lock = FolderLock(_sibling(target, LOCK_SUFFIX), f"output folder {target}")
    try:
        lock.acquire()
        reused = _open_stage(target, stage, resume)
    except OSError as exc:  # e.g. a read-only parent folder: name the folder the user gave
        lock.release()
        _raise_as_fault_of(exc, target)
        raise
    try:
        yield stage
        if swap:
            _carry_over(target, stage, owned)
            mode = stat.S_IMODE(target.stat().st_mode) if target.is_dir() else 0o777 & ~_umask()
            os.chmod(stage, mode)  # the folder keeps its permissions (a shared group folder stays shared)
            _swap(stage, target, _sibling(target, OLD_SUFFIX))
        else:
            _move_entries(stage, target, owned)
    except BaseException as exc:
        # A refusal of the input leaves nothing worth resuming, unless the folder was already there.
        worth_keeping = keep_if is not None and _holds_something(stage / keep_if)
        if worth_keeping and (reused or not isinstance(exc, InputError)):
            note_kept(
                f"unfinished outputs in {stage} (train's [train] resume = true, or rerunning `run`, continues from them)"
            )
        else:
            shutil.rmtree(stage, ignore_errors=True)
        _raise_as_fault_of(exc, _unstaged(exc, stage, target))
        raise
    finally:
        lock.release()


def _holds_something(entry: Path) -> bool:
    return entry.is_file() or (entry.is_dir() and any(entry.iterdir()))


def _unstaged(exc: BaseException, stage: Path, target: Path) -> Path:
    """The path a fault inside the staging folder will have once published."""
    name = next((e.filename for e in (exc, exc.__cause__) if isinstance(e, OSError) and e.filename), None)
    if name is None:
        return target
    try:
        return target / Path(os.fspath(name)).relative_to(stage)
    except ValueError:
        return Path(os.fspath(name))


def _open_stage(target: Path, stage: Path, resume: bool) -> bool:
    """Make the staging folder; True when it is one a killed run left (and ``resume`` keeps it)."""
    recover_dir(target)
    if stage.exists() and not resume:
        log.warning("%s: removing the unfinished outputs of an interrupted run (%s)", target, stage.name)
        shutil.rmtree(stage)
    if resume and stage.is_dir():
        log.info("%s: resuming from the unfinished outputs in %s", target, stage.name)
        return True
    if resume and target.is_dir():
        skip_stage = lambda folder, names: [stage.name] if Path(folder) == target else []  # noqa: E731
        shutil.copytree(target, stage, copy_function=_link_or_copy, symlinks=True, ignore=skip_stage)
    else:
        stage.mkdir(parents=True)
    return False


def _carry_over(target: Path, stage: Path, owned: Iterable[str] | None) -> None:
    if owned is None or not target.is_dir():
        return
    owned = set(owned)
    for entry in target.iterdir():
        if entry.name not in owned and not (stage / entry.name).exists():
            _copy_entry(entry, stage / entry.name)


def _copy_entry(src: Path, dst: Path) -> None:
    if src.is_symlink():
        os.symlink(os.readlink(src), dst)
    elif src.is_dir():
        shutil.copytree(src, dst, copy_function=_link_or_copy, symlinks=True)
    else:
        _link_or_copy(str(src), str(dst))


def _remove(entry: Path) -> None:
    if entry.is_dir() and not entry.is_symlink():
        shutil.rmtree(entry)
    else:
        entry.unlink()


def _swappable(target: Path) -> bool:
    """A folder can be renamed away unless it is a mount point or the working directory."""
    if not target.exists():
        return True
    return not os.path.ismount(target) and target.resolve() != Path.cwd().resolve()


def _move_entries(stage: Path, target: Path, owned: Iterable[str] | None) -> None:
    """Fallback when the folder itself cannot be swapped: replace its entries one by one."""
    owned_names = None if owned is None else set(owned)
    new_names = {p.name for p in stage.iterdir()}
    for entry in list(target.iterdir()):
        if entry == stage:
            continue
        if (owned_names is None or entry.name in owned_names) and entry.name not in new_names:
            _remove(entry)
    for entry in stage.iterdir():
        dst = target / entry.name
        if dst.is_dir() and not dst.is_symlink():
            shutil.rmtree(dst)
        os.replace(entry, dst)
    stage.rmdir()


# What an interrupted or failed command kept for a rerun; the CLI prints it with the error.
_KEPT: list[str] = []


def note_kept(text: str) -> None:
    _KEPT.append(text)


def kept_notes() -> list[str]:
    return list(_KEPT)


def forget_kept() -> None:
    """A new command starts with nothing to report (tests run many commands in one process)."""
    _KEPT.clear()


def _json_default(o: Any):
    import numpy as np

    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")
