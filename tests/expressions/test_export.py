"""Exported modules: importable without actsearch, trainable, and immune to hostile text."""
from __future__ import annotations

import ast
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from actsearch import parse, write_module
from actsearch.expressions.printing import load_source
from actsearch.expressions import export_source

EXPRS = ["x*sigmoid(beta*x)", "max(x, tanh(x))", "cos(x) - x", "sinc(x) + x", "div(x, 1 + abs(x))",
         "gelu(x)", "rbf(x, sin(x)) + beta1*x"]

CHILD = textwrap.dedent("""
    import importlib, json, sys
    sys.path.insert(0, sys.argv[1])
    import torch
    from torch import nn

    def train_one_step(act):
        net = nn.Sequential(nn.Linear(4, 8), act, nn.Linear(8, 1))
        opt = torch.optim.SGD(net.parameters(), lr=0.1)
        x, y = torch.randn(16, 4), torch.randn(16, 1)
        before = {n: p.detach().clone() for n, p in act.named_parameters()}
        loss = ((net(x) - y) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        grads = {n: float(p.grad.abs().sum()) for n, p in act.named_parameters()}
        opt.step()
        moved = {n: float((p.detach() - before[n]).abs().sum()) for n, p in act.named_parameters()}
        return float(loss), {"grad": grads, "moved": moved}

    reports = {}
    for module_name in sys.argv[2:]:
        try:
            exported = importlib.import_module(module_name)
        except BaseException as exc:  # reported per file, so one broken file fails one test
            reports[module_name] = {"error": repr(exc)}
            continue
        assert "actsearch" not in sys.modules, sorted(m for m in sys.modules if "actsearch" in m)
        torch.manual_seed(0)
        report = reports[module_name] = {"all": exported.__all__, "betas": {}, "loss": []}
        for cls_name in exported.__all__[1::2]:
            loss, betas = train_one_step(getattr(exported, cls_name)(num_channels=8))
            report["betas"][cls_name] = betas
            report["loss"].append(loss)
    assert "actsearch" not in sys.modules
    print(json.dumps(reports))
""")


def _run_isolated(folder: Path, *modules: str) -> dict:
    """Import ``folder/<module>.py`` in a fresh, isolated interpreter (-I: no cwd, no env paths)."""
    proc = subprocess.run([sys.executable, "-I", "-c", CHILD, str(folder), *modules],
                          capture_output=True, text=True, timeout=120, cwd=folder)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """Both exported files, imported and trained one step in ONE subprocess (torch import is slow)."""
    folder = tmp_path_factory.mktemp("exported")
    write_module([parse(e) for e in EXPRS], folder / "exported.py",
                 names=["swish", "max tanh", "cos minus x", "sinc plus x", "soft div", "gelu"])
    write_module([parse("x*sigmoid(beta*x)")] * len(HOSTILE), folder / "hostile.py",
                 names=HOSTILE, docs=HOSTILE, header="header " + HOSTILE[0] + HOSTILE[3])
    return folder, _run_isolated(folder, "exported", "hostile")


def test_exported_module_imports_without_actsearch_and_trains(exported) -> None:
    folder, reports = exported
    assert (folder / "exported.py").is_file()
    report = reports["exported"]
    assert "error" not in report, report
    assert report["all"][:4] == ["swish", "Swish", "max_tanh", "MaxTanh"]
    assert report["all"][-2:] == ["activation_6", "Activation6"]  # unnamed: a default name
    assert all(torch.isfinite(torch.tensor(l)) for l in report["loss"])
    for cls_name, with_beta in [("Swish", ["beta"]), ("Activation6", ["beta0", "beta1"])]:
        info = report["betas"][cls_name]
        assert sorted(info["grad"]) == with_beta
        assert all(g > 0 for g in info["grad"].values()), "gradient flows into β"
        assert all(m > 0 for m in info["moved"].values()), "one SGD step moves β"


def test_exported_functions_match_the_compiled_candidates(tmp_path: Path) -> None:
    cands = [parse(e) for e in EXPRS]
    src = export_source(cands)
    mod = load_source(src, "export-test")
    x = torch.linspace(-4, 4, 101, dtype=torch.float64)
    for i, cand in enumerate(cands):
        fn = getattr(mod, f"activation_{i}")
        torch.testing.assert_close(fn(x), cand.evaluate(x))
        torch.testing.assert_close(getattr(mod, f"Activation{i}")().double()(x), cand.evaluate(x))


HOSTILE = [
    '"""; import os; os.system("x") #',
    "'''; import os; os.system('x') #",
    'trailing backslash \\',
    'x\\"""\nimport os\n"""',
    "line one\nimport os\nos.system('x')",
    "nul\x00byte",
    "carriage\rimport os",
    "form\x0cfeed and \x1b escape",
    "\\N{BULLET} \\x41 \\u0041",
    "torch",        # would shadow the module the code calls
    "f",            # its class would be F, shadowing torch.nn.functional
    "super",
    "x",            # forward's argument
    "class",
    "1st",
    "",
]


def test_hostile_names_and_docs_cannot_inject_code(exported) -> None:
    folder, reports = exported
    source = (folder / "hostile.py").read_text(encoding="utf-8")
    tree = ast.parse(source)
    allowed = (ast.Import, ast.ImportFrom, ast.Assign, ast.AnnAssign, ast.FunctionDef, ast.ClassDef)
    body = tree.body
    assert isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)  # docstring
    assert all(isinstance(node, allowed) for node in body[1:]), [type(n).__name__ for n in body]
    imports = [node for node in body if isinstance(node, (ast.Import, ast.ImportFrom))]
    imported = {a.name for node in imports for a in node.names}
    assert imported == {"annotations", "math", "torch", "torch.nn.functional", "nn"}
    # every string constant that is not a docstring is one of the code's own (no smuggled text)
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, (ast.Module, ast.FunctionDef, ast.ClassDef))
                  and node.body and isinstance(node.body[0], ast.Expr)
                  and isinstance(node.body[0].value, ast.Constant)}
    # … or a piece of the fixed prelude's own error message (the same in every export)
    prelude = {n.value for n in ast.walk(ast.parse(export_source([])))
               if isinstance(n, ast.Constant) and isinstance(n.value, str)}
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            if id(node) not in docstrings:
                assert node.value.isidentifier() or node.value in {"annotations"} | prelude, node.value
    doc_text = "\n".join(ast.get_docstring(n, clean=False) or "" for n in ast.walk(tree)
                         if isinstance(n, (ast.Module, ast.FunctionDef, ast.ClassDef)))
    for text in HOSTILE:  # the hostile text survives, as documentation only
        first = text.replace("\r", "").strip().splitlines()[0] if text.strip() else ""
        assert first in doc_text
    # nothing executes on import, and every activation still works
    report = reports["hostile"]
    assert "error" not in report, report
    names = report["all"]
    assert len(names) == 2 * len(HOSTILE) and len(set(names)) == len(names)
    assert all(n.isidentifier() for n in names)
    assert not {"torch", "F", "super", "x", "nn", "math"} & set(names)
    assert all(all(g > 0 for g in b["grad"].values()) for b in report["betas"].values())


def test_long_names_stay_distinct() -> None:
    # Regression: two names equal in their first 60 characters got the same identifier.
    cands = [parse("x"), parse("sin(x)")]
    mod = load_source(export_source(cands, names=["a" * 70, "a" * 70 + "b"]))
    funcs = mod.__all__[0::2]
    assert len(set(funcs)) == 2
    x = torch.tensor([1.0])
    assert {float(getattr(mod, f)(x)) for f in funcs} == {1.0, float(torch.sin(x))}


@pytest.mark.parametrize("expr", ["beta", "x"])
def test_degenerate_and_trivial_candidates_still_export(expr: str) -> None:
    mod = load_source(export_source([parse(expr)]))
    m = mod.Activation0(num_channels=3)
    y = m(torch.ones(2, 3))
    assert torch.isfinite(torch.as_tensor(y)).all()
