#!/usr/bin/env python3
"""Draw a training run's learning curve: greedy dev WER of each dev set against training hours.

    python recipes/default/curve.py RUN/last.pt -o recipes/default/curve.png [--start START.json]
        [--hours-per-step H] [--offset HOURS] [--title TEXT]

RUN/last.pt holds the run's dev history (`asr train` measures each dev set, up to
dev_max_utterances of it, every dev_every steps and at each epoch's end). Runs from before the
history carried `train_hours` are placed by step x --hours-per-step (the run's measured
seconds per step / 3600). --start adds the starting model's figures at hour 0: a JSON object
{"name": wer, ...} of the same dev subsets (e.g. the model given as init_from=), or a list of
such objects each with its "hours" (points of an earlier run whose checkpoint is gone); --offset
then places the checkpoints' histories after those hours. Several checkpoints draw as one curve,
each after the one before (a run, then its fine-tuning).
"""
import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the checkout: asr

from asr.checkpoint import ModelError, read_payload  # noqa: E402


def points(paths: list[str], hours_per_step: float | None, start: dict | list | None,
           offset: float = 0.0) -> dict[str, list[tuple[float, float]]]:
    """dev set -> [(hours, wer)]: the start point(s), then the runs in order from `offset` hours."""
    curves: dict[str, list[tuple[float, float]]] = {}
    for entry in [start] if isinstance(start, dict) else start or []:
        hours = float(entry.get("hours", 0.0))
        for name, wer in entry.items():
            if name != "hours":
                curves.setdefault(name, []).append((hours, float(wer)))
    for path in paths:
        history = (read_payload(path).get("training") or {}).get("history") or []
        if not history:
            raise SystemExit(f"curve.py: error: {path}: no dev history (was the run given dev sets?)")
        end = offset
        for entry in history:
            if "train_hours" in entry:
                hours = entry["train_hours"]
            elif hours_per_step:
                hours = entry["step"] * hours_per_step
            else:
                raise SystemExit(f"curve.py: error: {path}: its history has no train_hours; give --hours-per-step")
            end = max(end, offset + hours)
            for key, value in entry.items():
                if key.endswith("_wer") and key != "mean_wer":
                    curves.setdefault(key[:-4], []).append((offset + hours, value))
        offset = end
    return curves


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("checkpoints", nargs="+", metavar="LAST.pt")
    ap.add_argument("-o", "--output", required=True, metavar="PNG")
    ap.add_argument("--start", metavar="JSON", help='the starting model\'s dev WER: {"name": wer, ...}')
    ap.add_argument("--hours-per-step", type=float, help="for histories without train_hours")
    ap.add_argument("--offset", type=float, default=0.0, metavar="HOURS",
                    help="training hours before the first checkpoint's run (default 0)")
    ap.add_argument("--title", default="greedy dev WER while training (2 CPU cores)")
    args = ap.parse_args(argv)
    start = json.loads(Path(args.start).read_text()) if args.start else None
    try:
        curves = points(args.checkpoints, args.hours_per_step, start, args.offset)
    except ModelError as err:
        raise SystemExit(f"curve.py: error: {err}")
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=100)
    for name, pts in sorted(curves.items()):
        pts.sort()
        ax.plot([h for h, _ in pts], [w for _, w in pts], marker="o", markersize=3, label=name)
    ax.set_xlabel("training hours")
    ax.set_ylabel("WER (greedy, no LM)")
    ax.set_ylim(0, max(1.0, max(w for pts in curves.values() for _, w in pts) * 1.05))
    ax.grid(alpha=0.3)
    ax.legend(loc="upper right", fontsize=8)
    ax.set_title(args.title, fontsize=10)
    fig.tight_layout()
    fig.savefig(args.output)
    for name, pts in sorted(curves.items()):
        print(f"{name}: " + " ".join(f"{h:.2f}h:{w:.3f}" for h, w in pts))


if __name__ == "__main__":
    main()
