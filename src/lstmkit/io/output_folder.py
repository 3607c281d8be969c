"""The output folders lstmkit writes, kept safe: what a path holds, a directory staged beside
its target and swapped in with renames, recovery after a killed save, one writer at a time, and
the refusal to replace anything that is not lstmkit's own.

A save renames target -> target.old, then the staged folder -> target, then deletes
target.old; a crash at any point leaves a whole old or a whole new directory
(`recover_interrupted_save` finishes or undoes what a killed one left). Only lstmkit
directories of the kind being written ("model", "pretrained", by their config.json) or empty
folders are ever replaced.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from contextlib import contextmanager
from pathlib import Path

from lstmkit.atomic import fsync_dir
from lstmkit.errors import LstmkitError

PRETRAINED_KIND = "lstmkit-pretrained"  # config.json's "kind" in a `lstmkit pretrain` directory
ONNX_KIND = "lstmkit-onnx"  # export.json's "kind" in a `lstmkit export` folder (it has no config.json)


def directory_kind(directory) -> str | None:
    """What a path holds: "absent", "empty", "model", "pretrained" (an lstmkit directory, by its
    config.json), "onnx" (by its export.json), or None for anything else, such as the user's own files."""
    directory = Path(directory)
    if not directory.exists() and not directory.is_symlink():
        return "absent"
    if not directory.is_dir() or directory.is_symlink():
        return None
    if not any(directory.iterdir()):
        return "empty"
    exported = not (directory / "config.json").exists() and (directory / "export.json").is_file()
    try:
        config = json.loads((directory / ("export.json" if exported else "config.json")).read_text())
    except (OSError, ValueError):
        return None
    if (
        not isinstance(config, dict)
        or not isinstance(config.get("format_version"), int)
        or isinstance(config["format_version"], bool)
    ):
        return None
    kind = config.get("kind", "model")
    if exported:
        return "onnx" if kind == ONNX_KIND else None
    return {"model": "model", PRETRAINED_KIND: "pretrained"}.get(kind)


def _swap_in(tmp_dir: Path, target: Path, kind: str):
    """Replace target by tmp_dir with renames; the old one survives as target.old until the end.

    Only a directory of the same kind (or an empty one) is ever replaced: anything else at the
    target is the user's, and is refused before anything moves.
    """
    if directory_kind(target) not in ("absent", "empty", kind):
        raise LstmkitError(
            f"{target} exists and is not an lstmkit {kind} directory; lstmkit never replaces it: choose a new or empty folder"
        )
    old = target.with_name(target.name + ".old")
    if old.exists():
        if directory_kind(old) not in ("empty", kind):
            raise LstmkitError(f"{old} is in the way and is not an lstmkit {kind} directory; move it away")
        shutil.rmtree(old)
    if target.exists():
        os.rename(target, old)
    os.rename(tmp_dir, target)
    fsync_dir(target.parent)
    if old.exists():
        shutil.rmtree(old)


@contextmanager
def staged_directory(directory, kind="model"):
    """Build a directory beside `directory`, then swap it in with renames.

    Yields the temporary folder to fill. An exception (Ctrl-C included) removes it and leaves the
    old directory as it was. Write config.json last, with `file_checksums` of the rest. `kind`
    is what the target may already hold ("model" or "pretrained"); anything else is refused.
    """
    target = Path(directory)
    if directory_kind(target) not in ("absent", "empty", kind):
        raise LstmkitError(
            f"{target} exists and is not an lstmkit {kind} directory; lstmkit never replaces it: choose a new or empty folder"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    try:
        yield tmp
        _swap_in(tmp, target, kind)
    except OSError as e:  # a full disk, say: the previous version is still in place
        shutil.rmtree(tmp, ignore_errors=True)
        raise LstmkitError(
            f"could not write {target} ({e.strerror or e}); what it held before (the last checkpoint, if any) is intact"
        ) from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def recover_interrupted_save(target, kind="model"):
    """Finish or undo what a killed save left beside `target`; returns a line saying what, or None.

    A save renames target -> target.old, then the new folder -> target, then deletes target.old.
    Killed between the renames, target is missing and target.old holds the last good version:
    it is renamed back. target.old beside a present target, and .target.tmp-PID folders of
    processes that no longer run, are leftovers and are removed (only if they are lstmkit's).
    """
    target = Path(target)
    old = target.with_name(target.name + ".old")
    said = None
    if directory_kind(old) in ("empty", kind):
        if directory_kind(target) == "absent":
            os.rename(old, target)
            said = f"recovered {target} from {old.name} (a save was interrupted between its two renames)"
        else:
            shutil.rmtree(old)
    if target.parent.is_dir():
        for tmp in target.parent.glob(f".{target.name}.tmp-*"):
            pid = tmp.name.rsplit("-", 1)[-1]
            if tmp.is_dir() and not tmp.is_symlink() and pid.isdigit() and not _pid_alive(int(pid)):
                shutil.rmtree(tmp, ignore_errors=True)
    return said


@contextmanager
def output_lock(target):
    """Hold an exclusive lock on the output folder `target` for as long as the block runs.

    The lock is a file `.NAME.lock` beside it (flock, released by the kernel if the process
    dies); a second writer gets an LstmkitError at once instead of racing the first.
    """
    import fcntl

    target = Path(target)
    here = Path.cwd().resolve()
    if target.resolve() == here or target.resolve() in here.parents:
        raise LstmkitError(
            f"--out {target} is the folder you are working in (or one above it); name a new folder, e.g. --out runs/model"
        )
    lock = target.with_name(f".{target.name}.lock")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise LstmkitError(f"cannot create {target.parent} ({e.strerror}); choose a writable output folder") from None
    while True:
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise LstmkitError(
                f"cannot write in {target.parent} ({e.strerror}); choose a writable output folder"
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise LstmkitError(
                f"another lstmkit process is writing {target} (it holds {lock}); wait for it to finish, or choose another folder"
            ) from None
        try:  # the holder before us may have unlinked the file after we opened it: lock the live one
            same = os.stat(lock).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            os.unlink(lock)
        os.close(fd)


@contextmanager
def claim_output(target, *, overwrite=False, resume=False, kind="model"):
    """Lock `target`, finish or undo what a killed save left there, and refuse it unless a run may
    write it (`check_output`), for as long as the block runs; yields the recovery's message or None.

        with claim_output(out, overwrite=True) as said:
            ...   # write `out` through staged_directory
    """
    with output_lock(target):
        said = recover_interrupted_save(target, kind=kind)
        check_output(target, overwrite=overwrite, resume=resume, kind=kind)
        yield said


def check_output(target, *, overwrite=False, resume=False, kind="model"):
    """Refuse an output folder whose contents a run would lose; returns its kind.

    New, empty: fine. An lstmkit directory of this kind: replaced only with `overwrite`, an
    interrupted run continued with `resume`. Anything else (the user's files, a file): refused,
    whatever the flags say.
    """
    target = Path(target)
    found = directory_kind(target)
    if found is None:
        what = (
            "a file" if target.exists() and not target.is_dir() else f"a folder that is not an lstmkit {kind} directory"
        )
        raise LstmkitError(f"--out {target} is {what}; lstmkit never replaces it: choose a new or empty folder")
    if found not in ("absent", "empty") and found != kind:
        raise LstmkitError(
            f"--out {target} holds an lstmkit {found} directory, not {'an' if kind == 'onnx' else 'a'} {kind} one; choose another folder"
        )
    if resume:
        if found in ("absent", "empty"):
            raise LstmkitError(f"{target} has no interrupted run to resume; train without --resume")
        return found
    if found == kind and not overwrite:
        status = _status(target)
        if status == "training":
            raise LstmkitError(
                f"{target} holds an interrupted run; continue it with --resume, replace it with --overwrite, or choose another --out"
            )
        raise LstmkitError(
            f"{target} already holds {'an ONNX export' if kind == 'onnx' else f'a trained {kind} directory'}; replace it with --overwrite, or choose another --out"
        )
    return found


def _status(directory):
    try:
        return json.loads((Path(directory) / "config.json").read_text()).get("status")
    except (OSError, ValueError, AttributeError):
        return None


def resolve_dir(directory) -> Path:
    """The model directory, or its previous version if a swap was interrupted mid-way."""
    directory = Path(directory)
    old = directory.with_name(directory.name + ".old")
    if not directory.exists() and old.exists():
        return old
    return directory
