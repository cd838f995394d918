"""Accuracy vs latency: one point per format, one colour per model, the Pareto front drawn."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def pareto_front(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """The points no other point beats on both lower latency (x) and higher accuracy (y)."""
    front = []
    best = float("-inf")
    for x, y in sorted(points, key=lambda p: (p[0], -p[1])):
        if y > best:
            front.append((x, y))
            best = y
    return front


def save_figure(fig: Any, path: str | Path) -> Path:
    """Lay out `fig`, write it as PNG atomically, close it."""
    import matplotlib.pyplot as plt

    from compress.artifacts import atomic_path

    fig.tight_layout()
    target = Path(path)
    with atomic_path(target) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return target


def pareto_plot(rows: list[dict[str, Any]], path: str | Path, *, title: str) -> Path:
    """Write the plot of the rows whose status is ok (PNG, atomically)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = [
        r for r in rows if r.get("status") == "ok" and r.get("p50_ms") and r.get("top1") is not None
    ]
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    models = list(dict.fromkeys(r["model"] for r in ok))
    for i, model in enumerate(models):
        pts = [(r["p50_ms"], 100 * r["top1"], r["format"]) for r in ok if r["model"] == model]
        ax.scatter(
            [p[0] for p in pts], [p[1] for p in pts], s=40, color=f"C{i}", label=model, zorder=3
        )
        for k, (x, y, name) in enumerate(pts):
            # alternate the label's side and height so neighbours (one model's formats lie
            # close together) do not print over each other
            dx, dy = (6, 5 + 9 * (k % 3)) if k % 2 == 0 else (-6, -9 - 9 * (k % 3))
            ax.annotate(
                name,
                (x, y),
                textcoords="offset points",
                xytext=(dx, dy),
                ha="left" if dx > 0 else "right",
                fontsize=7,
                arrowprops={"arrowstyle": "-", "color": "0.6", "linewidth": 0.5},
            )
    front = pareto_front([(r["p50_ms"], 100 * r["top1"]) for r in ok])
    if len(front) > 1:
        ax.plot(
            [p[0] for p in front],
            [p[1] for p in front],
            "--",
            color="grey",
            linewidth=1,
            label="Pareto front",
        )
    ax.set_xscale("log")
    from matplotlib.ticker import LogLocator, NullFormatter, ScalarFormatter

    ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(ScalarFormatter())
    ax.xaxis.set_minor_formatter(NullFormatter())  # minor labels collided with the major ones
    ax.set_xlabel("p50 latency (ms, log scale)")
    ax.set_ylabel("top-1 (%)")
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    if ok:
        ax.legend(fontsize=8)
    else:
        ax.text(0.5, 0.5, "no format ran", ha="center", va="center", transform=ax.transAxes)
    return save_figure(fig, path)


def study_plot(
    rows: list[dict[str, Any]], methods: list[str], path: str | Path, *, xlabel: str, title: str
) -> Path:
    """Accuracy vs the study's axis, one line per method with ±std error bars (PNG, atomically)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    for i, method in enumerate(methods):
        pts = sorted(
            (r["value"], 100 * r["mean"], 100 * r["std"]) for r in rows if r["method"] == method
        )
        if not pts:
            continue
        ax.errorbar(
            [p[0] for p in pts],
            [p[1] for p in pts],
            yerr=[p[2] for p in pts],
            marker="o",
            capsize=3,
            color=f"C{i % 10}",
            linestyle="--" if method == "none" else "-",
            label=method,
        )
    ax.set_xlabel(xlabel)
    ax.set_ylabel("test top-1 (%)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, ncol=2)
    return save_figure(fig, path)
