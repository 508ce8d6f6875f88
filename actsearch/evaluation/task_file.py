"""A user's task from where the command line names it: ``FILE.py[:NAME]`` or ``package.module:NAME``
(the object ``task`` by default), and what a study records of it — name, source, a hash of its file.

A study's trials are only comparable if every one was scored by the same task: the record
(:func:`task_record`) is stored in the study, and a worker or a resumed search that loads a task
whose name or file hash differ is refused (:func:`find_task`). Loading runs the task's dry check
(:meth:`Task.check`), so a broken task file is one line before the first trial, not a study of
failed ones.
"""
from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
from pathlib import Path
from typing import Any

from ..errors import TaskError, one_line
from .task import Task

__all__ = ["load_task", "find_task", "task_record", "file_hash", "TASK_FILE_DEFAULT"]

#: The object a task file or module is read for when the spec names none.
TASK_FILE_DEFAULT = "task"
#: Tasks this process has loaded, by file hash: a worker given ``--task`` finds it here.
_LOADED: dict[str, Task] = {}


def file_hash(path: str | Path) -> str:
    """sha256 of a file's bytes (16 hex digits), what a study compares."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


def _split(spec: str) -> tuple[str, str]:
    """("examples/t.py", "task") from "examples/t.py[:NAME]" or ("pkg.mod", "NAME") from "pkg.mod:NAME"."""
    where, sep, name = spec.strip().rpartition(":")
    if not sep or (len(where) == 1 and where.isalpha()):  # no NAME (or only a drive letter before it)
        where, name = spec.strip(), TASK_FILE_DEFAULT
    if not name.isidentifier():
        raise TaskError(f"--task {spec!r}: {name!r} is not a Python name (use FILE.py[:NAME] or package.module:NAME)")
    return where, name


def _import(spec: str, where: str) -> tuple[Any, Path]:
    """The module a spec names, and the file to hash."""
    path = Path(where)
    if where.endswith(".py") or path.exists():
        if not path.is_file():
            raise TaskError(f"--task {spec!r}: no such file {where!r}")
        module_name = f"_actsearch_task_{hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:12]}"
        mod_spec = importlib.util.spec_from_file_location(module_name, path)
        if mod_spec is None or mod_spec.loader is None:
            raise TaskError(f"--task {spec!r}: {where!r} is not a Python file")
        module = importlib.util.module_from_spec(mod_spec)
        sys.modules[module_name] = module  # dataclasses and pickling look their module up here
        try:
            mod_spec.loader.exec_module(module)
        except BaseException as exc:
            sys.modules.pop(module_name, None)
            if isinstance(exc, KeyboardInterrupt):
                raise
            raise TaskError(f"--task {spec!r}: running {where} raised {type(exc).__name__}: {exc}") from None
        return module, path
    if not all(part.isidentifier() for part in where.split(".")):
        raise TaskError(f"--task {spec!r}: neither a file nor a module name (use FILE.py[:NAME] or package.module:NAME)")
    try:
        module = importlib.import_module(where)
    except ModuleNotFoundError as exc:
        raise TaskError(f"--task {spec!r}: no file or module {where!r} ({exc})") from None
    except Exception as exc:
        raise TaskError(f"--task {spec!r}: importing {where} raised {type(exc).__name__}: {exc}") from None
    file = getattr(module, "__file__", None)
    if file is None:
        raise TaskError(f"--task {spec!r}: module {where} has no source file to record")
    return module, Path(file)


def load_task(spec: str, *, check: bool = True) -> Task:
    """The :class:`Task` a ``--task`` spec names, dry-checked (``check``); a one-line
    :class:`TaskError` for a missing file or object, an object that is not a Task, or a failing check."""
    where, name = _split(spec)
    module, path = _import(spec, where)
    obj = getattr(module, name, None)
    if obj is None:
        found = [k for k, v in vars(module).items() if isinstance(v, Task)]
        hint = f" (it defines: {', '.join(found)}; use {where}:{found[0]})" if found else ""
        raise TaskError(f"--task {spec!r}: {where} has no object {name!r}{hint}")
    if not isinstance(obj, Task):
        raise TaskError(f"--task {spec!r}: {name} is a {type(obj).__name__}, not an actsearch.Task")
    obj.source, obj.hash = spec.strip(), file_hash(path)
    if check:
        try:
            obj.check()
        except TaskError:
            raise
        except Exception as exc:  # anything else the dry run meets is the task's fault too
            raise TaskError(one_line(f"task {obj.name!r}: the dry run raised {type(exc).__name__}: {exc}")) from None
    _LOADED[obj.hash] = obj
    return obj


def task_record(task: Task) -> dict[str, str]:
    """What a study stores of a loaded task (:func:`find_task` reads it back)."""
    if task.source is None or task.hash is None:
        raise TaskError(f"task {task.name!r} was not loaded from a file: a study needs one to record "
                        "(pass it with --task FILE.py)")
    return {"name": task.name, "source": task.source, "hash": task.hash}


def find_task(record: dict[str, Any], study: str = "") -> Task:
    """The task a study recorded: the one this process loaded with that hash (``--task``), else
    loaded again from the recorded source — refused if its name or file changed since."""
    name, source, want = record.get("name"), str(record.get("source")), record.get("hash")
    task = _LOADED.get(str(want))
    if task is None:
        try:
            task = load_task(source)
        except TaskError as exc:
            raise TaskError(f"study {study!r} needs its task {name!r} from {source}: {exc} (pass the task "
                            f"file with --task)") from None
    if task.hash != want or task.name != name:
        raise TaskError(f"study {study!r} was created with task {name!r} (file hash {want}); {task.source} now holds "
                        f"task {task.name!r} (hash {task.hash}): refusing to mix their trials (use another --study)")
    return task
