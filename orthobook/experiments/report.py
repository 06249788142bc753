"""Tables from the configurations and the store: the list, the faithfulness table, and the
paper's numbers beside ours with intervals over seeds and a verdict.

The verdict of a reported number (:func:`verdict`) is one of

* ``"agrees"``: the 95 % interval of our mean lies within the paper's value ± its tolerance
  (for a success rate: the Wilson interval contains the paper's rate),
* ``"disagrees"``: the interval lies wholly on the far side of the tolerance band,
* ``"not comparable at this budget"``: the runs stopped before the paper's number of steps,
  the paper gives no number, or the interval straddles the band.

Only complete runs (the paper's steps, or its early stop) are compared with a paper value.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from orthobook.experiments.config import Experiment, Reported
from orthobook.experiments.store import Store
from orthobook.stats import mean_interval, success_interval

__all__ = ["FAITHFUL_FIELDS", "paper_scale_hours", "comparison_rows", "comparison_table", "faithfulness_rows", "faithfulness_table", "listing", "verdict"]

FAITHFUL_FIELDS = (
    "task", "T", "model", "hidden_size", "nonlinearity", "recurrent", "margin", "reflectors", "init",
    "init_scale", "optimizer", "lr", "frame_lr", "spectrum_lr_over_2m", "weight_decay", "clip",
    "batch_size", "steps", "lr_decay", "split", "select", "early_stop_loss",
)  # fmt: skip


def _show(value: object) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def listing(experiments: Sequence[Experiment]) -> str:
    """One line per configuration: name, task, T, model, constraint, start, paper steps."""
    lines = [f"{'name':<38} {'task':<8} {'T':>6} {'model':<5} {'recurrent':<25} {'init':<10} {'steps':>7}"]
    for e in experiments:
        constraint = e.recurrent if e.margin is None else f"{e.recurrent} m={e.margin:g}"
        lines.append(f"{e.name:<38} {e.task:<8} {e.T:>6} {e.model:<5} {constraint:<25} {e.init:<10} {e.steps:>7}")
    return "\n".join(lines)


def faithfulness_rows(experiments: Sequence[Experiment]) -> list[dict[str, str]]:
    """Hyperparameter × paper × ours, with the note of each deviation.

    For each paper the first configuration contributes every field of
    :data:`FAITHFUL_FIELDS`; every other configuration contributes its deviations that the
    first one lacks.
    """
    rows: list[dict[str, str]] = []
    seen: set[tuple[str, str, str, str]] = set()
    firsts: dict[str, str] = {}
    for e in experiments:
        first = firsts.setdefault(e.paper, e.name)
        fields = FAITHFUL_FIELDS if e.name == first else tuple(d.field for d in e.deviations)
        for name in fields:
            deviation = e.deviation(name)
            paper = "not found" if deviation is not None and deviation.paper is None else _show(e.paper_value(name))
            key = (e.paper, name, paper, _show(getattr(e, name)))
            if key in seen:
                continue
            seen.add(key)
            rows.append(
                {
                    "paper": e.paper,
                    "configuration": e.name,
                    "hyperparameter": name,
                    "paper value": paper,
                    "ours": _show(getattr(e, name)),
                    "note": "" if deviation is None else deviation.why,
                }
            )
    return rows


def _markdown(rows: list[dict[str, str]]) -> str:
    if not rows:
        return "(nothing)"
    keys = list(rows[0])
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(str(r[k]).replace("|", "/") for k in keys) + " |" for r in rows]
    return "\n".join(lines)


def faithfulness_table(experiments: Sequence[Experiment]) -> str:
    """:func:`faithfulness_rows` as a Markdown table."""
    return _markdown(faithfulness_rows(experiments))


def verdict(reported: Reported, summaries: Sequence[dict[str, Any]]) -> tuple[str, str]:
    """(``"agrees"`` / ``"disagrees"`` / ``"not comparable at this budget"``, the reason)."""
    if not summaries:
        return "not run", "no stored run"
    if reported.value is None:
        return "not comparable at this budget", "the paper gives a curve or a statement, not a number"
    if not all(s["complete"] for s in summaries):
        steps = min(s["steps"] for s in summaries)
        return "not comparable at this budget", f"{steps} of the paper's {summaries[0]['paper_steps']} steps"
    low, high = _interval(reported.metric, summaries)
    band = (reported.value - reported.tolerance, reported.value + reported.tolerance)
    if reported.metric == "solved":
        if low <= reported.value <= high:
            return "agrees", "the Wilson interval contains the paper's rate"
        return "disagrees", "the Wilson interval excludes the paper's rate"
    if band[0] <= low and high <= band[1]:
        return "agrees", "the interval lies within the paper's value ± tolerance"
    if high < band[0] or low > band[1]:
        return "disagrees", "the interval lies outside the paper's value ± tolerance"
    return "not comparable at this budget", "the interval straddles the tolerance band: more seeds needed"


def _values(metric: str, summaries: Sequence[dict[str, Any]]) -> list[float]:
    return [s["metrics"][metric] for s in summaries if s["metrics"].get(metric) is not None]


def _interval(metric: str, summaries: Sequence[dict[str, Any]]) -> tuple[float, float]:
    values = _values(metric, summaries)
    if metric == "solved":
        found = success_interval(int(sum(values)), len(values))
    else:
        found = mean_interval(values)
    return found.low, found.high


def comparison_rows(experiments: Sequence[Experiment], store: Store) -> list[dict[str, Any]]:
    """One row per reported number: the paper's value beside our statistics over seeds,
    the budget the runs had (steps, wall time, device) and the verdict."""
    rows = []
    for e in experiments:
        summaries = store.summaries(e)
        for reported in e.reported:
            values = _values(reported.metric, summaries)
            if not values:
                ours = None
            elif reported.metric == "solved":
                ours = success_interval(int(sum(values)), len(values))
            else:
                ours = mean_interval(values) if len(values) > 1 else None
            word, reason = verdict(reported, summaries)
            rows.append(
                {
                    "name": e.name,
                    "paper": e.paper,
                    "metric": reported.metric,
                    "paper_value": reported.value,
                    "source": reported.source,
                    "statement": reported.statement,
                    "seeds": len(values),
                    "ours": ours,
                    "values": values,
                    "steps": min((s["steps"] for s in summaries), default=None),
                    "paper_steps": e.steps,
                    "wall_time_s": max((s["wall_time_s"] for s in summaries), default=None),
                    "steps_per_s": min((s["steps_per_s"] for s in summaries if s["steps_per_s"]), default=None),
                    "budget": ", ".join(sorted({s["budget"] for s in summaries})) or None,
                    "device": summaries[0]["device_name"] if summaries else None,
                    "device_type": summaries[0]["device"] if summaries else None,
                    "threads": summaries[0]["threads"] if summaries else None,
                    "verdict": word,
                    "reason": reason,
                }
            )
    return rows


def _ours_text(row: dict[str, Any]) -> str:
    ours = row["ours"]
    if ours is None:
        return "—" if not row["values"] else f"{row['values'][0]:.3g} (1 seed)"
    if row["metric"] == "solved":
        return f"{ours.k}/{ours.n} [{ours.low:.2f}, {ours.high:.2f}]"
    return f"{ours.estimate:.3g} [{ours.low:.3g}, {ours.high:.3g}] (n={ours.n})"


def comparison_table(experiments: Sequence[Experiment], store: Store, *, only_run: bool = False) -> str:
    """:func:`comparison_rows` as a Markdown table (``only_run``: rows with stored runs)."""
    rows = []
    for row in comparison_rows(experiments, store):
        if only_run and not row["values"]:
            continue
        budget = "—"
        if row["steps"] is not None:
            budget = f"{row['steps']}/{row['paper_steps']} steps, {row['wall_time_s']:.0f} s ({row['budget']})"
        device = "—" if row["device_type"] is None else f"{row['device_type']}, {row['threads']} thread(s)"
        rows.append(
            {
                "configuration": row["name"],
                "metric": row["metric"],
                "paper": _show(row["paper_value"]) if row["paper_value"] is not None else "curve",
                "ours (95 %)": _ours_text(row),
                "budget (stated)": budget,
                "device": device,
                "verdict": row["verdict"],
            }
        )
    return _markdown(rows)


def paper_scale_hours(experiment: Experiment, summaries: Sequence[dict[str, Any]]) -> float | None:
    """Hours that the paper's number of steps would take on the device and threads that
    ``summaries`` ran with, at their slowest measured rates; ``None`` without a measured rate.

    With the training rate and the time of one validation pass recorded (runs stored since
    they are), the estimate is ``steps / train_rate + (steps / eval_every) · validation_s``:
    a short run validates far more often per step than the paper's run does, so its wall-clock
    rate would overstate the cost. Older summaries give only the wall-clock rate, validation
    passes included, and the estimate is ``steps / rate``.
    """
    if all(s.get("train_steps_per_s") and s.get("validation_s") is not None for s in summaries) and summaries:
        train_rate = min(s["train_steps_per_s"] for s in summaries)
        validation = max(s["validation_s"] for s in summaries)
        return (experiment.steps / train_rate + experiment.steps / experiment.eval_every * validation) / 3600
    rates = [s["steps_per_s"] for s in summaries if s.get("steps_per_s")]
    return experiment.steps / min(rates) / 3600 if rates else None
