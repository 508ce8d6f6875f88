"""The examples of a markdown page, run as a reader would run them.

A page's fenced ```python blocks run in order in one namespace, and its ```console blocks' ``$ ``
lines run in bash, all in one fresh folder per page with the installed ``actsearch`` on PATH; a
command must exit 0 — unless its sample output is an ``actsearch: error:`` line, which it must print
as its only line, with exit status 2. Where sample output follows a command it is compared with the
real output (:func:`check_output`): its fixed lines (headers) must appear, and the real output must
have rows of each shape shown, at least as many as shown. A block right after the line ``<!-- skip-example: reason -->`` is shown,
not run (a server, a GPU, an hour of training).

Commands that train run at the smoke fidelity here (:func:`smoke`): the sample output shown to a
reader is the real output at the fidelity the page names, and the check is of its structure. A
command on a user's task (``--task``) runs as written: the task is the page's own, and small. A
python block whose docstring opens with a file name (FILE.py: …) is also saved as that file for the
commands after it.
"""
from __future__ import annotations

import contextlib
import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

SKIP = re.compile(r"<!--\s*skip-example:\s*(.+?)\s*-->")
FENCE = re.compile(r"^(`{3,})\s*(\w*)\s*$")
#: Commands that train: run at `smoke` on the tiny space here.
TRAINING = ("search", "verify", "compare", "noise")
#: A python block that opens with a docstring naming a file (``"""my_task.py: …"""``) is the file
#: the page asks the reader to save: it is also written there, for the commands that read it.
SAVED_AS = re.compile(r'"""([\w.-]+\.py):')
#: Seconds one command may take here before the example counts as broken.
TIMEOUT = 240


@dataclass
class Block:
    lang: str
    text: str
    line: int  # 1-based line of the opening fence
    skip: str | None = None


@dataclass
class Command:
    line: str
    expected: list[str] = field(default_factory=list)  # sample output shown under it


def blocks(markdown: str) -> list[Block]:
    """The fenced ```python and ```console blocks of a page, in order."""
    out: list[Block] = []
    lines = markdown.splitlines()
    i, skip = 0, None
    while i < len(lines):
        m = FENCE.match(lines[i])
        s = SKIP.search(lines[i])
        if s:
            skip = s.group(1)
        elif m:
            fence, lang, start = m.group(1), m.group(2), i
            body: list[str] = []
            i += 1
            while i < len(lines) and lines[i].strip() != fence:
                body.append(lines[i])
                i += 1
            if lang in ("python", "console"):
                out.append(Block(lang, "\n".join(body), start + 1, skip))
            skip = None
        elif lines[i].strip():
            skip = None  # a skip marker applies to the block right after it only
        i += 1
    return out


def commands(console: str) -> list[Command]:
    """The ``$ `` commands of a console block (``\\`` continues a line) and the output under each."""
    out: list[Command] = []
    pending: str | None = None
    heredoc: str | None = None  # the word that ends a here-document (``cat > f <<'EOF'``)
    for raw in console.splitlines():
        if pending is not None:
            pending += "\n" + raw
            if heredoc is not None:
                if raw.strip() == heredoc:
                    out.append(Command(pending))
                    pending = heredoc = None
            elif not raw.rstrip().endswith("\\"):
                out.append(Command(pending))
                pending = None
            continue
        if raw.startswith("$ "):
            here = re.search(r"<<-?\s*['\"]?(\w+)['\"]?", raw)
            if here:
                pending, heredoc = raw[2:], here.group(1)
            elif raw.rstrip().endswith("\\"):
                pending = raw[2:]
            else:
                out.append(Command(raw[2:]))
        elif out and raw.strip():
            out[-1].expected.append(raw)
    return out


def smoke(command: str, on_task: bool = False) -> str:
    """The command as it runs here: training commands at the smoke fidelity (the tiny space for a
    search of a shipped space), experiments with --quick. ``on_task``: the page has started on a
    user's task, whose studies train through it — its commands run as written."""
    try:
        words = shlex.split(command, comments=True)
    except ValueError:
        return command
    if len(words) < 2 or words[0] != "actsearch":
        return command
    sub = words[1]
    if sub in TRAINING and not on_task and not _on_task(words):
        fixed: list[str] = []
        it = iter(words)
        for w in it:
            if w == "--fidelity":
                next(it, None)
                continue
            if w.startswith("--fidelity="):
                continue
            fixed.append(w)
        fixed += ["--fidelity", "smoke"]
        if sub == "search" and "--space" not in fixed:
            fixed += ["--space", "tiny"]
        return shlex.join(fixed)
    if sub == "experiment" and "--list" not in words and "--quick" not in words:
        return shlex.join([*words, "--quick"])
    return command


def _on_task(words: list[str]) -> bool:
    return any(w == "--task" or w.startswith("--task=") for w in words)


# ------------------------------------------------------------------------------ output shape
_NUMBER = re.compile(r"[-+]?\d+(?:[.,]\d+)*(?:e[-+]?\d+)?%?")


def _normal(line: str) -> str:
    return " ".join(line.split())


def kind(line: str) -> str:
    """A row's shape: its first two words with numbers as N and a trial label (#12, ref) as #N."""
    text = re.sub(r"\[\s+", "[", line.strip())
    words = text.split()[:2]
    shaped = []
    for w in words:
        w = _NUMBER.sub("N", w)
        w = re.sub(r"^\(?#N\)?$|^ref$|^\(ref\)$", "#N", w)
        shaped.append(w if re.fullmatch(r"[\w#\[\]/:.()-]*", w) and len(w) <= 24 else "X")
    return " ".join(shaped)


def check_output(expected: list[str], actual: str) -> list[str]:
    """What is wrong with the sample output ``expected`` of a command whose real output is ``actual``:
    a fixed line (no digits: a table header, a label) missing from the real output, a row shape the
    real output lacks, or more rows of a shape than the real output has (a page may show fewer:
    "…" elides). The real output here may come from a smaller run than the page's (:func:`smoke`),
    so numbers and expressions are not compared."""
    problems: list[str] = []
    real = [ln for ln in actual.splitlines() if ln.strip()]
    real_normal = {_normal(ln) for ln in real}
    for ln in expected:
        if ln.strip() == "…":
            continue
        if not re.search(r"\d", ln) and _normal(ln) not in real_normal:
            problems.append(f"fixed line not in the real output: {ln.strip()!r}")
    want: dict[str, int] = {}
    for ln in expected:
        if ln.strip() != "…":
            want[kind(ln)] = want.get(kind(ln), 0) + 1
    have: dict[str, int] = {}
    for ln in real:
        have[kind(ln)] = have.get(kind(ln), 0) + 1
    for k, n in want.items():
        if k not in have:
            problems.append(f"no line shaped {k!r} in the real output")
        elif n > have[k]:
            problems.append(f"{n} line(s) shaped {k!r} shown, {have[k]} in the real output")
    return problems


# ------------------------------------------------------------------------------------ running
def run_page(path: Path, workdir: Path, bin_dir: Path) -> list[str]:
    """Run every example of the page at ``path`` in ``workdir``; returns the failures found."""
    failures: list[str] = []
    namespace: dict[str, object] = {"__name__": "__docs__"}
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}", "PYTHONPATH": str(workdir),
           "MPLBACKEND": "Agg", "COLUMNS": "100"}
    try:
        _run_blocks(path, workdir, env, namespace, failures)
    finally:
        _forget_page_modules(workdir)  # a page's `import found_acts` must not shadow the next one's
    return failures


def _forget_page_modules(workdir: Path) -> None:
    """Drop from sys.modules what a page's python blocks imported from its folder (the modules it
    wrote, e.g. an exported found_acts.py): another page, or a test, may write one of that name."""
    root = str(workdir.resolve())
    for name, module in list(sys.modules.items()):
        where = getattr(module, "__file__", None)
        if where and str(Path(where).resolve()).startswith(root):
            del sys.modules[name]


def _run_blocks(path: Path, workdir: Path, env: dict[str, str], namespace: dict[str, object],
                failures: list[str]) -> None:
    on_task = False  # the page's commands have started on a user's task
    for block in blocks(path.read_text(encoding="utf-8")):
        where = f"{path.name}:{block.line}"
        if block.skip:
            continue
        if block.lang == "python":
            saved = SAVED_AS.match(block.text)
            if saved:  # a file the page tells the reader to save: its commands below read it
                (workdir / saved.group(1)).write_text(block.text + "\n", encoding="utf-8")
            with _inside(workdir):
                try:
                    exec(compile(block.text, where, "exec"), namespace)  # noqa: S102 — the page's own example
                except Exception as exc:  # every failure is reported with the block it came from
                    failures.append(f"{where}: python block raised {type(exc).__name__}: {exc}")
            continue
        for cmd in commands(block.text):
            try:
                on_task = on_task or _on_task(shlex.split(cmd.line, comments=True))
            except ValueError:
                pass
            line = smoke(cmd.line, on_task)
            proc = subprocess.run(["bash", "-c", line], cwd=workdir, env=env, capture_output=True, text=True,
                                  timeout=TIMEOUT)
            out = proc.stdout + proc.stderr
            if cmd.expected and cmd.expected[0].startswith("actsearch: error:"):  # an example of bad input
                if proc.returncode != 2 or _normal(out) != _normal(cmd.expected[0]):
                    failures.append(f"{where}: `{line}` should fail with exit status 2 and the line shown; "
                                    f"it exited {proc.returncode}: {out.strip()[-600:]}")
                continue
            if proc.returncode != 0:
                failures.append(f"{where}: `{line}` exited {proc.returncode}: {out.strip()[-600:]}")
                continue
            for problem in check_output(cmd.expected, out):
                failures.append(f"{where}: `{cmd.line}`: {problem}\n--- real output ---\n{out[-1500:]}")


@contextlib.contextmanager
def _inside(workdir: Path):
    old = os.getcwd()
    os.chdir(workdir)
    sys.path.insert(0, str(workdir))
    try:
        yield
    finally:
        sys.path.remove(str(workdir))
        os.chdir(old)
