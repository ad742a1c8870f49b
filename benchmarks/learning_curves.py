"""Learning curves of query strategies on one synthetic survey, each judged on
the spectra its model has not seen, beside a random-query baseline.

    vo-al synth SURVEY --lamost 500000 --ondrejov 13000 --pool --seed 0
    python benchmarks/learning_curves.py SURVEY --out RUNS \\
        --strategies entropy random bald margin --iterations 12 --query-size 50 \\
        --json docs/results/learning-curves.json --plot docs/images/learning-curves.png

One session per strategy, all on the same pool (``SURVEY/pool.h5``),
training set (``SURVEY/train.h5``) and seed, answered from
``SURVEY/truth.csv``. The first strategy's first iteration trains the model
on the training set alone; the other strategies start from that same
checkpoint and its cached trunk features (they would train the identical
model). Later iterations run in the mode given (default: head-only on the
cached trunk features: the speed-up is stated with the figures). Prints
the Markdown tables that docs/results.md quotes, and writes the JSON
reports and the picture.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from contextlib import nullcontext
from dataclasses import replace
from pathlib import Path

from vo_al.curves import curve_table, plot_curves, summary_table
from vo_al.loop import IterationOptions
from vo_al.runtime import tune_allocator
from vo_al.scoring import ScoreConfig
from vo_al.session import Session
from vo_al.simulate import share_first_model, simulate


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("survey", type=Path, help="folder with pool.h5, train.h5, truth.csv")
    parser.add_argument("--out", type=Path, required=True, help="folder for the sessions")
    parser.add_argument("--strategies", nargs="+", default=["entropy", "random", "bald"])
    parser.add_argument("--iterations", type=int, default=12)
    parser.add_argument("--query-size", type=int, default=50)
    parser.add_argument("--estimate-size", type=int, default=30)
    parser.add_argument("--mode", choices=("scratch", "warm", "head"), default="head",
                        help="training after the first iteration (default: head)")
    parser.add_argument("--max-epochs", type=int, default=30)
    parser.add_argument("--patience", type=int, default=5)
    parser.add_argument("--answer-weight", type=float, default=1.0,
                        help="weight of each oracle answer in the training loss (default: 1)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="write every report here")
    parser.add_argument("--plot", type=Path, help="write the picture here (PNG)")
    return parser.parse_args(argv)


def run_strategy(args, strategy, first, options) -> list[dict]:
    """Create (or reopen) the strategy's session and simulate what is left."""
    directory = args.out / strategy
    if (directory / "config.json").is_file():
        session = Session.open(directory)
    else:
        session = Session.create(directory, args.survey / "train.h5", args.survey / "pool.h5",
                                 strategy=strategy, query_size=args.query_size,
                                 estimate_size=args.estimate_size, seed=args.seed)
    with session:
        shared = share_first_model(first, session) if first is not None else None
        left = args.iterations - session.iteration
        started = time.perf_counter()
        simulate(session, args.survey / "truth.csv", left, replace(options, strategy=strategy),
                 on_iteration=lambda r: print(_line(r), flush=True), baseline=None,
                 first_model=shared)
        print(f"{strategy}: {left} iterations in {time.perf_counter() - started:.0f} s",
              flush=True)
        return [session.read_record(n, "simulation") for n in range(1, session.iteration + 1)]


def _first_session(args):
    """The first strategy's session (whose first model the others share), if made."""
    directory = args.out / args.strategies[0]
    return Session.open(directory) if (directory / "config.json").is_file() else nullcontext()


def _line(report) -> str:
    unseen = report["unseen"]
    error = "—" if unseen["error"] is None else f"{unseen['error']:.3f}"
    return (f"  {report['strategy']:>8} {report['iteration']:>2}: error on unseen {error} "
            f"({unseen['predicted']} predicted), recall {unseen['recall']}, discoveries "
            f"{report['discoveries']}/{report['labels_spent']} labels, train "
            f"{report['train_s']:.0f} s, score {report['score_s']:.0f} s")


def main(argv=None):
    args = parse_args(argv)
    tune_allocator()
    options = IterationOptions(query_size=args.query_size, estimate_size=args.estimate_size,
                               mode=args.mode, max_epochs=args.max_epochs,
                               patience=args.patience, cache_features=True,
                               answer_weight=args.answer_weight,
                               score=ScoreConfig(precision="auto"))
    results = {}
    for strategy in args.strategies:
        with _first_session(args) as first:
            results[strategy] = run_strategy(args, strategy, first, options)
        if args.json:  # after each strategy, so that a run cut short keeps what it measured
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(results, indent=1) + "\n")
    print("\n" + summary_table(results) + "\n\n" + curve_table(results))
    if args.plot:
        plot_curves(results, args.plot, title=f"{args.survey.name}: "
                    f"{args.query_size} queries per iteration, {args.mode} iterations")
    return 0


if __name__ == "__main__":
    sys.exit(main())
