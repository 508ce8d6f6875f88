"""The tables a study's results are shown in: the leaderboard, a verification, a transfer check.

Text only — what :mod:`.leaderboard` and :mod:`.compare` compute, as the CLI prints it and as the
rediscovery writes it to ``leaderboard.md``, ``verify.md`` and ``transfer.md``.
"""
from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import optuna
from optuna.trial import TrialState
from scipy import stats

from ..evaluation import get_fidelity
from ..search import EVALUATED_FAILURES
from .compare import ALPHA, paired
from .leaderboard import Row

__all__ = ["pm", "study_summary", "format_leaderboard", "format_failures", "format_verify", "format_transfer"]


def study_summary(study: optuna.Study) -> str:
    trials = study.get_trials(deepcopy=False)
    dup = sum("duplicate_of" in t.user_attrs for t in trials)
    count = {s: sum(t.state == s and "duplicate_of" not in t.user_attrs for t in trials) for s in TrialState}
    degenerate = sum(t.user_attrs.get("status") == "degenerate" for t in trials)
    failed = count[TrialState.FAIL] - degenerate
    return (f"study {study.study_name}: {len(trials)} trials — {count[TrialState.COMPLETE]} trained, "
            f"{count[TrialState.PRUNED]} pruned, {dup} duplicate{'s' * (dup != 1)} (not retrained), {degenerate} degenerate, "
            f"{failed} failed" + (f", {count[TrialState.RUNNING]} running" if count[TrialState.RUNNING] else ""))


def pm(mean: float | None, std: float | None) -> str:
    if mean is None:
        return "—"
    return f"{mean:.4f} ± {std:.4f}" if std is not None else f"{mean:.4f}"


def format_leaderboard(rows: Sequence[Row], k: int) -> str:
    """The top ``k`` rows, then the references that did not make it (so ReLU/Swish always show)."""
    shown = list(rows[:k]) + [r for r in rows[k:] if r.reference in ("relu", "swish")]
    if not shown:
        return "(no completed trials yet)"
    width = min(44, max(10, *(len(r.expression) for r in shown)))
    lines = [f"{'rank':>4}  {'trial':>6}  {'expression':<{width}}  {'score':<17}  {'test':>6}  {'ood':>6}  nearest known"]
    for i, r in enumerate(shown):
        if i == k:
            lines.append(f"{'…':>4}")
        expr = r.expression if len(r.expression) <= width else r.expression[: width - 1] + "…"
        ref = f"  [{r.reference}]" if r.reference else ""
        test = f"{r.test:.4f}" if r.test is not None else "—"
        ood = f"{r.ood:.4f}" if r.ood is not None else "—"
        lines.append(f"{r.rank:>4}  {r.label:>6}  {expr:<{width}}  {pm(r.accuracy, r.std):<17}  {test:>6}  {ood:>6}  "
                     f"{r.nearest()}{ref}")
    return "\n".join(lines)


def format_failures(study: optuna.Study, k: int) -> str:
    """The study's failed trials with their reason (a divergence's step, a degenerate function's
    defect), newest first, at most ``k`` of them; "" when none failed. Trials that said nothing about
    their function (interrupted, over the budget, a retried worker's) are left out."""
    failed = [t for t in study.get_trials(deepcopy=False, states=(TrialState.FAIL,))
              if t.user_attrs.get("status") in EVALUATED_FAILURES and "duplicate_of" not in t.user_attrs]
    if not failed:
        return ""
    lines = [f"failed: {len(failed)} trial{'s' * (len(failed) != 1)} (their function did not train)"]
    for t in sorted(failed, key=lambda t: -t.number)[:k]:
        expr = str(t.user_attrs.get("expression", "?"))
        expr = expr if len(expr) <= 40 else expr[:39] + "…"
        lines.append(f"  #{t.number:<5} {expr:<40}  {t.user_attrs.get('status')}: "
                     f"{t.user_attrs.get('fail_reason') or 'no reason recorded'}")
    if len(failed) > k:
        lines.append(f"  … {len(failed) - k} more (actsearch top --k N shows N of them)")
    return "\n".join(lines)


def format_verify(records: Sequence[dict[str, Any]]) -> str:
    """Per function: test accuracy mean ± std, the paired Δ vs ReLU, the paired t-test's p — raw, and
    Holm-corrected over the table's own functions — and the accuracy on the shifted test set."""
    lines = [f"{'':<16}{'expression':<34}{'test accuracy':<19}{'Δ vs ReLU':>10}  {'p (paired t)':>12}  {'p Holm':>7}  "
             f"{'OOD accuracy':<17}"]
    for r in records:
        d = f"{r['diff_vs_relu']:+.4f}" if r["diff_vs_relu"] is not None else "—"
        p = f"{r['p_value']:.3g}" if r["p_value"] is not None else "—"
        ph = f"{r['p_holm']:.3g}" if r.get("p_holm") is not None else "—"
        expr = r["expression"] if len(r["expression"]) <= 32 else r["expression"][:31] + "…"
        name = r["name"] if len(r["name"]) <= 15 else r["name"][:14] + "…"
        lines.append(f"{name:<16}{expr:<34}{pm(r['test_mean'], r['test_std']):<19}{d:>10}  {p:>12}  {ph:>7}  "
                     f"{pm(r.get('ood_mean'), r.get('ood_std')):<17}")
    return "\n".join(lines)


# -------------------------------------------------------------------------------- transfer
def _order(recs: Sequence[dict[str, Any]]) -> str:
    ranked = sorted((r for r in recs if r["test_mean"] is not None), key=lambda r: -r["test_mean"])
    return " > ".join(r["name"] if r["name"] in ("relu", "swish") else f"`{r['expression']}`" for r in ranked)


def _beats(r: dict[str, Any]) -> bool:
    """Above ReLU with p < ALPHA (the record's paired t-test)."""
    d, p = r.get("diff_vs_relu"), r.get("p_value")
    return d is not None and d > 0 and p is not None and p < ALPHA


def _reading(diff: float | None, p: float | None) -> str:
    if diff is None:
        return "no result"
    if p is not None and p < ALPHA:
        return f"beats ReLU (p < {ALPHA:g})" if diff > 0 else f"below ReLU (p < {ALPHA:g})"
    return "above ReLU, within noise" if diff > 0 else "not above ReLU, within noise"


def _vs(r: dict[str, Any]) -> str:
    if r.get("diff_vs_relu") is None:
        return "Δ —"
    sd = f" ± {r['diff_std']:.4f}" if r.get("diff_std") is not None else ""
    p = f"{r['p_value']:.3g}" if r.get("p_value") is not None else "—"
    return f"Δ {r['diff_vs_relu']:+.4f}{sd}, p={p}"


def _correlation(verified: Mapping[str, dict[str, Any]], recs: Sequence[dict[str, Any]]) -> tuple[Any, Any]:
    """(Kendall, Spearman) of the mean test accuracies here vs verified; (None, None) under 3 pairs."""
    pairs = [(verified[r["name"]]["test_mean"], r["test_mean"]) for r in recs if r["test_mean"] is not None
             and verified.get(r["name"], {}).get("test_mean") is not None]
    if len(pairs) < 3:
        return None, None
    xs, ys = zip(*pairs)
    return stats.kendalltau(xs, ys), stats.spearmanr(xs, ys)


def format_transfer(verified: Sequence[dict[str, Any]], results: Mapping[str, Sequence[dict[str, Any]]],
                    command: str | None = None) -> str:
    """transfer.md: a summary table, then per child the table, the order, the rank correlations with
    the verified order, and each of the top k vs ReLU."""
    first = list(next(iter(results.values())))
    by_name = {r["name"]: r for r in verified}
    top = [r["name"] for r in first if r["name"] not in ("relu", "swish")]
    vfid = str(verified[0].get("fidelity") or "?")
    try:
        vchild = get_fidelity(vfid).describe()
    except Exception:  # a fidelity this version does not know: the name is still informative
        vchild = "?"
    head = ["# Transfer check: does the verified ranking hold on other children?", ""]
    if command:
        head += ["```console", f"$ {command}", "```", ""]
    head += [f"The top {len(top)} of the search's own candidates by verified test accuracy (verified at `{vfid}`: "
             f"{vchild}; seeds {verified[0]['seeds']}), plus ReLU and Swish, re-trained on each child below over "
             f"{len(first[0]['seeds'])} paired seeds {first[0]['seeds']}. Δ: paired difference to ReLU, mean ± "
             f"std over the seeds; p: paired t-test; \"beats ReLU\": Δ > 0 and p < {ALPHA:g}, uncorrected. "
             f"τ, ρ: Kendall's and Spearman's rank correlation of the {len(first)} mean test accuracies with "
             f"their verified means (with only {len(first)} functions a coarse measure: τ's p is scipy's exact test).",
             ""]
    vrecs = [by_name[r["name"]] for r in first if r["name"] in by_name]
    vwins = [r for r in vrecs if r["name"] in top and _beats(r)]
    vswish = by_name.get("swish")
    summary = [f"| child | order (by mean test accuracy) | Kendall τ (p) | Spearman ρ | top {len(top)} "
               f"beating ReLU | Swish vs ReLU |", "|---|---|---|---|---|---|",
               f"| `{vfid}` (verified) | {_order(vrecs)} | — | — | {len(vwins)} of {len(top)} | "
               f"{_vs(vswish) if vswish else '—'} |"]
    body: list[str] = []
    for fid, recs in results.items():
        tau, rho = _correlation(by_name, recs)
        wins = [r for r in recs if r["name"] in top and _beats(r)]
        swish = next((r for r in recs if r["name"] == "swish"), None)
        corr = (f"Kendall τ = {tau.statistic:+.2f} (p = {tau.pvalue:.2g}), Spearman ρ = {rho.statistic:+.2f}"
                if tau is not None else "too few results for a rank correlation")
        body += [f"## `{fid}`: {get_fidelity(fid).describe()}", "", "```", format_verify(recs), "```", "",
                 f"- order: {_order(recs)}", f"- vs the verified order: {corr}",
                 f"- top {len(top)} beating ReLU here: {len(wins)} of {len(top)}"]
        for r in recs:
            if r["name"] in top:
                was = f"verified {_vs(by_name[r['name']])}; " if r["name"] in by_name else ""
                body.append(f"  - {r['expression']} [{r['name']}]: {was}here {_vs(r)} → "
                            f"{_reading(r['diff_vs_relu'], r['p_value'])}; vs Swish here "
                            f"{_vs_pair(r, swish, 'test_accuracies')}")
        if swish is not None:
            body.append(f"- Swish: {_vs(swish)} → {_reading(swish['diff_vs_relu'], swish['p_value'])}")
        body.append("")
        summary.append(f"| `{fid}` | {_order(recs)} | "
                       + (f"{tau.statistic:+.2f} ({tau.pvalue:.2g}) | {rho.statistic:+.2f}" if tau is not None
                          else "— | —")
                       + f" | {len(wins)} of {len(top)} | {_vs(swish) if swish else '—'} |")
    ood = [r for r in verified if r["name"] in top and any(math.isfinite(v) for v in r.get("ood_accuracies") or [])]
    if ood:  # the verified nets themselves on the shifted test set: no re-training
        vrelu = by_name.get("relu")
        body += [f"## OOD: the verified `{vfid}` nets on the shifted test set", ""]
        body += [f"- {r['expression']} [{r['name']}]: OOD {r['ood_mean']:.4f}; vs ReLU "
                 f"{_vs_pair(r, vrelu, 'ood_accuracies')}; vs Swish {_vs_pair(r, vswish, 'ood_accuracies')}"
                 for r in ood]
        body.append("")
    return "\n".join(head + summary + [""] + body)


def _vs_pair(r: dict[str, Any], other: dict[str, Any] | None, key: str) -> str:
    """"Δ mean ± sd, p=…" of r's per-seed ``key`` values against ``other``'s, paired by seed."""
    if other is None:
        return "—"
    diff, sd, p = paired(r.get(key) or [], other.get(key) or [])
    if diff is None:
        return "—"
    return f"Δ {diff:+.4f}{f' ± {sd:.4f}' if sd is not None else ''}, p={'—' if p is None else f'{p:.3g}'}"
