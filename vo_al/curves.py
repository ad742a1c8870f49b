"""Learning curves of simulated loops: the table and the picture that
``vo-al demo`` and ``benchmarks/learning_curves.py`` write.

Input is what :func:`vo_al.simulate.simulate` returns, grouped by strategy:
``{strategy: [report, ...]}``, one report per iteration.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["PAPER_ERROR", "MIN_PREDICTED", "first_below", "curve_table", "summary_table", "plot_curves"]

#: The paper's level: error below 6.5 % among spectra predicted interesting.
PAPER_ERROR = 0.065


#: Fewest unseen spectra predicted interesting for an error to count (the
#: paper's estimate sample size): 0 wrong of 3 predicted says little.
MIN_PREDICTED = 30


def first_below(reports: list[dict], level: float = PAPER_ERROR,
                min_predicted: int = MIN_PREDICTED) -> int | None:
    """The first iteration whose error on unseen spectra is below ``level``,
    among at least ``min_predicted`` unseen spectra predicted interesting."""
    for report in reports:
        unseen = report["unseen"]
        if unseen["predicted"] >= min_predicted and unseen["error"] < level:
            return report["iteration"]
    return None


def _cell(value, spec=".3f") -> str:
    return "—" if value is None else format(value, spec)


def _estimate(report) -> str:
    est = report["estimated"]["overall"]
    if not est["n"]:
        return "—"
    return f"{1 - est['precision']:.3f} [{1 - est['high']:.2f}, {1 - est['low']:.2f}]"


def curve_table(results: dict[str, list[dict]]) -> str:
    """A Markdown table: one row per strategy and iteration."""
    lines = ["| strategy | iteration | labels spent | discoveries | error on unseen "
             "(predicted) | recall on unseen | estimated error [95 %] |",
             "|---|---|---|---|---|---|---|"]
    for strategy, reports in results.items():
        for r in reports:
            unseen = r["unseen"]
            lines.append(
                f"| {strategy} | {r['iteration']} | {r['labels_spent']} | {r['discoveries']} | "
                f"{_cell(unseen['error'])} ({unseen['predicted']}) | {_cell(unseen['recall'])} | "
                f"{_estimate(r)} |")
    return "\n".join(lines)


def summary_table(results: dict[str, list[dict]]) -> str:
    """A Markdown table: per strategy, where it reached the paper's level and
    its discoveries per 100 labels, beside the random baseline's."""
    lines = ["| strategy | first iteration with error on unseen < 6.5 % (≥ 30 predicted) "
             "| last error on unseen (predicted) "
             "| discoveries | labels spent | discoveries per 100 labels |",
             "|---|---|---|---|---|---|"]
    for strategy, reports in results.items():
        if not reports:
            lines.append(f"| {strategy} | no iteration yet | | | | |")
            continue
        last = reports[-1]
        reached = first_below(reports)
        lines.append(
            f"| {strategy} | {'not reached' if reached is None else reached} | "
            f"{_cell(last['unseen']['error'])} ({last['unseen']['predicted']}) | "
            f"{last['discoveries']} | {last['labels_spent']} | "
            f"{100 * last['discoveries'] / max(1, last['labels_spent']):.1f} |")
    return "\n".join(lines)


def plot_curves(results: dict[str, list[dict]], path, title: str = "") -> Path:
    """Write the picture: discoveries against labels spent, and the error on
    unseen spectra by iteration with the paper's 6.5 % line.

    Parameters
    ----------
    results : dict
        ``{strategy: [report, ...]}``.
    path : str or path-like
        PNG file to write.
    title : str
        Figure title.

    Returns
    -------
    Path
    """
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    figure, (found, error) = pyplot.subplots(1, 2, figsize=(11, 4.2), constrained_layout=True)
    for strategy, reports in results.items():
        style = "--" if strategy == "random" else "-"
        found.plot([r["labels_spent"] for r in reports], [r["discoveries"] for r in reports],
                   style, marker="o", ms=3, label=strategy)
        points = [(r["iteration"], r["unseen"]["error"]) for r in reports
                  if r["unseen"]["error"] is not None]
        error.plot([i for i, _ in points], [e for _, e in points], style, marker="o", ms=3,
                   label=strategy)
    error.axhline(PAPER_ERROR, color="grey", lw=1, ls=":", label="paper's level (6.5 %)")
    found.set(xlabel="labels spent (queries + estimate samples)",
              ylabel="interesting spectra found by queries", title="discoveries")
    error.set(xlabel="iteration", ylabel="error among unseen spectra predicted interesting",
              title="error on spectra the model has not seen", ylim=(0, 1))
    error.xaxis.get_major_locator().set_params(integer=True)
    for axes in (found, error):
        axes.grid(alpha=0.3)
        axes.legend(fontsize=8)
    if title:
        figure.suptitle(title)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    pyplot.close(figure)
    return path
