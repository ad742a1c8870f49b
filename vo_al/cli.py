"""The ``vo-al`` command line: one sub-command per task, each a thin call
into the library."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from . import __version__
from .lock import IterationLocked

__all__ = ["main", "build_parser"]


class _Progress:
    """A tqdm bar fed by ``(done, total)`` callbacks, on stderr."""

    def __init__(self, description: str, unit: str):
        from tqdm import tqdm

        self._bar = tqdm(desc=description, unit=unit, file=sys.stderr, dynamic_ncols=True,
                         disable=None)

    def __call__(self, done: int, total: int):
        self._bar.total = total
        self._bar.n = done
        self._bar.refresh()

    def close(self):
        self._bar.close()


def _print_json(payload):
    print(json.dumps(payload, indent=2, sort_keys=True))


# ---------------------------------------------------------------- inspect


def _cmd_inspect(args) -> int:
    from .spectra import SpectrumReadError, read_spectrum

    status = 0
    summaries = []
    for path in args.files:
        try:
            summaries.append(read_spectrum(path).summary())
        except (SpectrumReadError, FileNotFoundError) as exc:
            print(f"vo-al inspect: {exc}", file=sys.stderr)
            status = 2
    if args.json:
        _print_json(summaries[0] if len(summaries) == 1 else summaries)
    else:
        for summary in summaries:
            _print_summary(summary)
    return status


def _print_summary(summary: dict):
    def fmt(value, spec=""):
        return "—" if value is None else format(value, spec)

    print(f"{summary['source']}")
    print(f"  format           {summary['format']}")
    print(f"  id               {summary['id']}")
    print(f"  designation      {fmt(summary['designation'])}")
    print(f"  object           {fmt(summary['object'])}")
    print(f"  ra, dec (deg)    {fmt(summary['ra'], '.6f')}, {fmt(summary['dec'], '.6f')}")
    print(f"  pixels           {summary['n_pixels']}")
    print(f"  wavelength (Å)   {fmt(summary['wavelength_min'], '.2f')} – "
          f"{fmt(summary['wavelength_max'], '.2f')} ({summary['medium']})")
    print(f"  resolving power  {fmt(summary['resolving_power'], '.0f')}")
    if summary["survey_class"]:
        print(f"  survey class     {summary['survey_class']} {summary['survey_subclass'] or ''}")


# ---------------------------------------------------------------- synth


def _cmd_synth(args) -> int:
    from .synth import generate_survey

    if getattr(args, "pool", False):
        return _cmd_synth_pools(args)
    bar = _Progress("synth", "file")
    try:
        report = generate_survey(
            args.outdir, n_lamost=args.lamost, n_ondrejov=args.ondrejov, seed=args.seed,
            emission_fraction=args.emission_fraction, corrupt=args.corrupt,
            workers=args.workers, progress=bar,
        )
    finally:
        bar.close()
    print(report.summary())
    return 0


def _cmd_synth_pools(args) -> int:
    """``vo-al synth --pool``: the survey straight into pool.h5, train.h5, truth.csv."""
    from .pool import InputsChangedError, PoolExistsError
    from .preprocess import PreprocessConfig
    from .synth import generate_pools

    if args.corrupt:
        print("vo-al synth: --corrupt needs files; it cannot be combined with --pool",
              file=sys.stderr)
        return 2
    config = PreprocessConfig(wave_min=args.wave_min, wave_max=args.wave_max,
                              n_points=args.points, blur=args.blur)
    bar = _Progress("synth", "spectrum")
    try:
        report = generate_pools(
            args.outdir, n_lamost=args.lamost, n_ondrejov=args.ondrejov, seed=args.seed,
            emission_fraction=args.emission_fraction, workers=args.workers, config=config,
            shard_rows=args.shard_rows, overwrite=args.overwrite, progress=bar,
        )
    except (PoolExistsError, InputsChangedError, ValueError) as exc:
        print(f"vo-al synth: {exc}", file=sys.stderr)
        return 2
    finally:
        bar.close()
    print(report.summary())
    return 0


# ---------------------------------------------------------------- ingest


def _cmd_ingest(args) -> int:
    from .labelfile import LabelFileError, read_label_csv
    from .pool import InputsChangedError, PoolExistsError, ingest, rejected_csv_path
    from .preprocess import PreprocessConfig

    try:
        labels = read_label_csv(args.labels) if args.labels else None
    except (LabelFileError, OSError) as exc:
        print(f"vo-al ingest: {exc}", file=sys.stderr)
        return 2
    config = PreprocessConfig(wave_min=args.wave_min, wave_max=args.wave_max,
                              n_points=args.points, blur=args.blur)
    bar = _Progress("ingest", "file")
    try:
        report = ingest(args.inputs, args.out, labels=labels, workers=args.workers,
                        config=config, overwrite=args.overwrite, progress=bar,
                        shard_rows=args.shard_rows)
    except (PoolExistsError, InputsChangedError) as exc:
        print(f"vo-al ingest: {exc}", file=sys.stderr)
        return 2
    finally:
        bar.close()
    _print_ingest_report(report, rejected_csv_path(args.out))
    return 0


def _print_ingest_report(report, rejected_csv):
    resumed = f" (resumed after {report.resumed_inputs})" if report.resumed_inputs else ""
    print(f"pool {report.pool}: {report.n_spectra} spectra from {report.n_inputs} files{resumed}")
    print(f"  usable {report.n_usable}, kept with quality > 0: {report.n_unusable} "
          f"{report.quality_counts}")
    print(f"  rejected files {report.n_rejected}, duplicate ids {report.n_duplicates} "
          f"(listed in {rejected_csv})")
    if report.n_labelled:
        print(f"  labelled {report.n_labelled}")
    print(f"  {report.seconds:.1f} s, {report.files_per_second:.0f} files/s")


# ---------------------------------------------------------------- demo


def _cmd_demo(args) -> int:
    """A demo survey straight into HDF5, then a simulated loop beside a
    random-query baseline, judged on the spectra the model has not seen."""
    from .curves import plot_curves, summary_table

    out = Path(args.dir)
    survey = out / "survey"
    if not (survey / "train.h5").exists():
        status = _cmd_synth_pools(argparse.Namespace(
            outdir=survey, lamost=args.lamost, ondrejov=args.ondrejov, seed=args.seed,
            emission_fraction=args.emission_fraction, workers=args.workers, corrupt=0,
            wave_min=6519.0, wave_max=6732.0, points=140, blur="resolution", shard_rows=4096,
            overwrite=False))
        if status:
            return status
    session_dir = out / "session"
    results = _demo_loop(args, survey, session_dir)
    if results is None:
        return 2
    print("\n" + summary_table(results))
    picture = plot_curves(results, out / "learning-curves.png",
                          title=f"vo-al demo: {args.lamost:,} LAMOST-like spectra")
    print(f"learning curves: {picture}")
    if args.no_gui or not os.environ.get("DISPLAY"):
        print(f"open the session in the desktop app: {_vo_al_command()} gui {session_dir}")
        return 0
    return _cmd_gui(argparse.Namespace(session=session_dir, screenshot=None))


def _demo_loop(args, survey: Path, session_dir: Path) -> dict | None:
    """Run (or continue) the demo session and its baseline; never deletes labels."""
    from .loop import IterationOptions
    from .session import Session
    from .simulate import simulate

    if not (session_dir / "config.json").exists():
        Session.create(session_dir, survey / "train.h5", survey / "pool.h5", seed=args.seed,
                       query_size=args.query_size, estimate_size=args.estimate_size).close()
    options = IterationOptions(mode="warm", max_epochs=args.max_epochs, patience=3,
                               answer_weight=args.answer_weight)
    progress = _LoopProgress()

    def show(report):
        progress.close()
        print(_simulation_line(report), flush=True)

    with Session.open(session_dir) as session:
        left = max(0, args.iterations - session.iteration)
        if session.iteration:
            print(f"continuing {session_dir} after iteration {session.iteration} "
                  f"(its labels are kept; --dir elsewhere starts afresh)")
        try:
            simulate(session, survey / "truth.csv", left, options, on_iteration=show,
                     progress=progress, baseline="random" if args.baseline else None)
        finally:
            progress.close()
        results = {session.config.strategy: _simulation_records(session)}
    twin = session_dir / "baselines" / "random"
    if args.baseline and twin.is_dir():
        with Session.open(twin) as baseline:
            results["random"] = _simulation_records(baseline)
    return results


def _simulation_records(session) -> list[dict]:
    return [r for r in (session.read_record(n, "simulation")
                        for n in range(1, session.iteration + 1)) if r]


def _vo_al_command() -> str:
    """How to run vo-al as printed: ``vo-al`` when that is this vo-al on
    PATH, else the full path of this environment's script (a virtual
    environment that is not activated)."""
    import shutil

    script = Path(sys.executable).parent / "vo-al"
    if not script.is_file():
        return f"{sys.executable} -m vo_al.cli"
    found = shutil.which("vo-al")
    return "vo-al" if found and Path(found).resolve() == script.resolve() else str(script)


# ---------------------------------------------------------------- session


def _open_session(path):
    from .session import Session

    return Session.open(path)


def _cmd_init(args) -> int:
    from .session import Session

    options = {"seed": args.seed, "strategy": args.strategy, "query_size": args.query_size,
               "estimate_size": args.estimate_size}
    if args.classes:
        options["class_names"] = args.classes.split(",")
    with Session.create(args.session, args.train, args.pool, **options) as session:
        print(f"session {args.session}: classes {', '.join(session.config.class_names)}; "
              f"train {args.train}, pool {args.pool}")
    return 0


def _iteration_options(args):
    from .loop import IterationOptions
    from .scoring import ScoreConfig

    mode = "head" if args.head_only else "warm" if args.warm_start else "scratch"
    return IterationOptions(
        strategy=args.strategy, query_size=args.query_size, estimate_size=args.estimate_size,
        mode=mode, max_epochs=args.max_epochs, patience=args.patience,
        diversity=args.diversity, cache_features=args.cache_features,
        mc_samples=args.mc_samples, paper=args.paper, answer_weight=args.answer_weight,
        score=ScoreConfig(precision=args.precision, batch_size=args.batch_size))


class _LoopProgress:
    """Progress bars for the train and score steps of an iteration."""

    def __init__(self):
        self._bars = {}

    def __call__(self, step, event):
        if step == "train":
            self._bar("train", "epoch")(event.epoch, event.max_epochs)
        elif step == "score":
            self._bar("score", "spectrum")(*event)

    def _bar(self, name, unit):
        if name not in self._bars:
            self._bars[name] = _Progress(name, unit)
        return self._bars[name]

    def close(self):
        for bar in self._bars.values():
            bar.close()
        self._bars = {}


def _cmd_iterate(args) -> int:
    from .loop import run_iteration

    progress = _LoopProgress()
    with _open_session(args.session) as session:
        try:
            result = run_iteration(session, _iteration_options(args), progress=progress)
        finally:
            progress.close()
    m = result.metrics
    print(f"iteration {result.iteration}: trained on {m['n_train']} spectra "
          f"({m['epochs']} epochs, {m['train_s']:.1f} s), scored {m['n_scored']} "
          f"({m['score_s']:.1f} s, {m['scoring_precision']}), predicted {m['predicted_counts']}")
    print(f"  query: {len(result.query)} spectra to label; estimate sample: "
          f"{len(result.estimate)} (see `vo-al queue {args.session}`)")
    return 0


def _queue_rows(session):
    n = session.iteration
    current = session.log.current()
    predicted = session.read_metrics(n).get("estimate_predicted", {}) if n else {}
    rows = []
    for kind in ("query", "estimate"):
        for spectrum_id in session.read_batch(n, kind) if n else []:
            entry = current.get(spectrum_id)
            rows.append({"id": spectrum_id, "kind": kind,
                         "answer": (entry.label or entry.action) if entry else None,
                         "predicted": session.config.class_names[predicted[spectrum_id]]
                         if spectrum_id in predicted else None})
    return n, rows


def _cmd_queue(args) -> int:
    with _open_session(args.session) as session:
        n, rows = _queue_rows(session)
    if args.json:
        _print_json({"iteration": n, "queue": rows})
        return 0
    left = [r for r in rows if r["answer"] is None]
    print(f"iteration {n}: {len(left)} of {len(rows)} still to label")
    for row in left if not args.all else rows:
        print(f"  {row['id']:<40} {row['kind']:<9} {row['answer'] or ''}")
    return 0


def _cmd_label(args) -> int:
    from .session import LabelRefused

    with _open_session(args.session) as session:
        try:
            entry = session.label(args.id, args.label, source="cli", sender=args.sender)
        except LabelRefused as exc:
            print(f"vo-al label: refused: {exc}", file=sys.stderr)
            return 2
    print(f"labelled {entry.spectrum_id} as {entry.label or entry.action} "
          f"({entry.purpose}, iteration {entry.iteration}, #{entry.seq})")
    return 0


def _cmd_undo(args) -> int:
    with _open_session(args.session) as session:
        entry = session.undo(source="cli", sender=args.sender)
        undone = entry and session.log.entries(spectrum_id=entry.spectrum_id)
    if entry is None:
        print("nothing to undo")
        return 1
    print(f"undid #{entry.undoes} ({entry.spectrum_id}); "
          f"{len(undone)} entries for it in the log")
    return 0


def _cmd_labels(args) -> int:
    with _open_session(args.session) as session:
        entries = session.log.entries()
    keys = ("seq", "spectrum_id", "label", "action", "source", "sender", "time", "iteration",
            "purpose", "undone", "undoes")
    rows = [{k: getattr(e, k) for k in keys} for e in entries]
    if args.json:
        _print_json(rows)
        return 0
    for r in rows:
        mark = " (undone)" if r["undone"] else ""
        what = r["label"] or (f"undo #{r['undoes']}" if r["action"] == "undo" else r["action"])
        print(f"#{r['seq']:<5} {r['time']} {r['spectrum_id']:<36} {what:<12} "
              f"{r['source']}/{r['sender'] or '-'} it{r['iteration']} {r['purpose']}{mark}")
    return 0


def _cmd_import_labels(args) -> int:
    from .labelfile import LabelFileError, read_label_pairs

    try:
        pairs = read_label_pairs(args.file, args.id_column, args.label_column)
    except LabelFileError as exc:
        print(f"vo-al import-labels: {exc}", file=sys.stderr)
        return 2
    with _open_session(args.session) as session:
        accepted, refused = session.label_many(pairs, source="import",
                                               sender=Path(args.file).name)
    print(f"imported {len(accepted)} labels from {args.file}; refused {len(refused)}")
    for spectrum_id, reason in refused[:20]:
        print(f"  {spectrum_id}: {reason}", file=sys.stderr)
    return 0 if accepted or not pairs else 2


def _cmd_export(args) -> int:
    from .export import candidate_table, write_table

    with _open_session(args.session) as session:
        try:
            table = candidate_table(session, args.iteration)
            write_table(table, args.out)
        except ValueError as exc:
            print(f"vo-al export: {exc}", file=sys.stderr)
            return 2
    print(f"wrote {len(table)} candidates to {args.out}")
    return 0


def _cmd_status(args) -> int:
    from .loop import precision_curve

    with _open_session(args.session) as session:
        n = session.iteration
        status = {"session": str(args.session), "iteration": n,
                  "label_counts": session.log.counts(),
                  "learning_curve": precision_curve(session),
                  "metrics": session.read_metrics(n) if n else {}}
        status["metrics"].pop("estimate_predicted", None)
    if args.json:
        _print_json(status)
        return 0
    print(f"{args.session}: iteration {n}, labels {status['label_counts']}")
    for point in status["learning_curve"]:
        o = point["overall"]
        text = "—" if o["n"] == 0 else f"{o['precision']:.3f} [{o['low']:.3f}, {o['high']:.3f}] of {o['n']}"
        print(f"  iteration {point['iteration']:>3}: estimated precision {text} "
              f"({point['labelled']}/{point['sample']} of the sample labelled)")
    return 0


def _fraction(value) -> str:
    return "—" if value is None else f"{value:.3f}"


def _simulation_line(report: dict) -> str:
    """One iteration of ``vo-al simulate`` in words."""
    est = report["estimated"]["overall"]
    est_text = ("—" if est["n"] == 0 else
                f"{1 - est['precision']:.3f} [{1 - est['high']:.3f}, {1 - est['low']:.3f}]")
    unseen = report["unseen"]
    return (f"{report['strategy']:>8} iteration {report['iteration']:>2}: error on unseen "
            f"{_fraction(unseen['error'])} (of {unseen['predicted']} predicted), recall "
            f"{_fraction(unseen['recall'])}, estimated error {est_text}, discoveries "
            f"{report['discoveries']} for {report['labels_spent']} labels, "
            f"train {report['train_s']:.1f} s, score {report['score_s']:.1f} s")


def _cmd_simulate(args) -> int:
    from .simulate import simulate

    progress = None if args.json else _LoopProgress()

    def show(report):
        if progress is not None:
            progress.close()
            print(_simulation_line(report), flush=True)

    try:
        with _open_session(args.session) as session:
            reports = simulate(session, args.truth, args.iterations, _iteration_options(args),
                               on_iteration=show, progress=progress,
                               baseline=None if args.no_baseline else args.baseline)
    finally:
        if progress is not None:
            progress.close()
    if args.json:
        _print_json(reports)
    return 0


def _cmd_samp(args) -> int:
    from .samp.headless import run

    return run(args.session, broadcast=args.broadcast, arm=args.arm, own_hub=args.own_hub,
               id_column=args.id_column, label_column=args.label_column)


def _cmd_gui(args) -> int:
    try:
        from gui.app import main as gui_main
    except ImportError as exc:  # PyQt5 or pyqtgraph missing
        print(f"vo-al gui: the desktop app needs PyQt5 and pyqtgraph "
              f"(pip install 'vo-al[gui]'): {exc}", file=sys.stderr)
        return 2
    return gui_main(args.session, screenshot=args.screenshot)


def _add_iteration_options(p):
    from .strategies import STRATEGIES

    p.add_argument("--strategy", choices=sorted(STRATEGIES),
                   help="query strategy (default: the session's)")
    p.add_argument("--query-size", type=int)
    p.add_argument("--estimate-size", type=int)
    p.add_argument("--warm-start", action="store_true", help="start from the last weights")
    p.add_argument("--head-only", action="store_true", help="fine-tune only the dense head")
    p.add_argument("--max-epochs", type=int, default=50)
    p.add_argument("--patience", type=int, default=10,
                   help="epochs without a better validation loss before stopping")
    p.add_argument("--cache-features", action="store_true",
                   help="keep trunk features (1 KB/spectrum) so --head-only rescoring is cheap")
    p.add_argument("--diversity", choices=("kmeans++", "coreset"),
                   help="spread the batch out in the network's feature space")
    p.add_argument("--mc-samples", type=int, help="MC-dropout samples (default 20 for bald)")
    p.add_argument("--precision", choices=("auto", "fp32", "bf16"), default="auto")
    p.add_argument("--batch-size", type=int, default=1024)
    p.add_argument("--answer-weight", type=float, default=1.0,
                   help="weight of each oracle answer in the training loss, against 1 for a "
                        "training-set spectrum (default: 1, the paper)")
    p.add_argument("--paper", action="store_true",
                   help="train with the paper's settings exactly (docs/method.md): from "
                        "scratch, SMOTE, early stopping on the training loss, patience 10")


def _add_session_commands(commands):
    p = commands.add_parser("init", help="create an active-learning session")
    p.add_argument("session", type=Path)
    p.add_argument("--train", required=True, type=Path, help="labelled training pool (HDF5)")
    p.add_argument("--pool", required=True, type=Path, help="pool to search (HDF5)")
    p.add_argument("--classes", help="comma-separated class names (first = not interesting)")
    p.add_argument("--strategy", default="entropy")
    p.add_argument("--query-size", type=int, default=100)
    p.add_argument("--estimate-size", type=int, default=30)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_cmd_init)

    p = commands.add_parser("iterate", help="train, score the pool, choose the next batch")
    p.add_argument("session", type=Path)
    _add_iteration_options(p)
    p.set_defaults(func=_cmd_iterate)

    p = commands.add_parser("queue", help="what to label now")
    p.add_argument("session", type=Path)
    p.add_argument("--json", action="store_true")
    p.add_argument("--all", action="store_true", help="also the answered ones")
    p.set_defaults(func=_cmd_queue)

    p = commands.add_parser("label", help="label one spectrum")
    p.add_argument("session", type=Path)
    p.add_argument("id")
    p.add_argument("label", help="a class name, an alias, or 'skip'")
    p.add_argument("--sender", default=os.environ.get("USER", ""))
    p.set_defaults(func=_cmd_label)

    p = commands.add_parser("undo", help="take back the latest answer")
    p.add_argument("session", type=Path)
    p.add_argument("--sender", default=os.environ.get("USER", ""))
    p.set_defaults(func=_cmd_undo)

    p = commands.add_parser("labels", help="the label log with provenance")
    p.add_argument("session", type=Path)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_cmd_labels)

    p = commands.add_parser("import-labels", help="labels from a CSV or VOTable")
    p.add_argument("session", type=Path)
    p.add_argument("file", type=Path)
    p.add_argument("--id-column", default="id")
    p.add_argument("--label-column", default="label")
    p.set_defaults(func=_cmd_import_labels)

    p = commands.add_parser("export", help="candidate table as .vot, .fits or .csv")
    p.add_argument("session", type=Path)
    p.add_argument("out", type=Path)
    p.add_argument("--iteration", type=int)
    p.set_defaults(func=_cmd_export)

    p = commands.add_parser("status", help="iteration, label counts, learning curve")
    p.add_argument("session", type=Path)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_cmd_status)

    p = commands.add_parser("simulate", help="run the loop answered from a truth table")
    p.add_argument("session", type=Path)
    p.add_argument("--truth", required=True, type=Path)
    p.add_argument("--iterations", type=int, default=5, help="iterations (default: 5)")
    p.add_argument("--json", action="store_true", help="print the reports as JSON")
    p.add_argument("--baseline", default="random",
                   help="strategy of the baseline twin run on the same survey, in "
                        "SESSION/baselines/NAME (default: random)")
    p.add_argument("--no-baseline", action="store_true", help="run no baseline")
    _add_iteration_options(p)
    p.set_defaults(func=_cmd_simulate)

    p = commands.add_parser("samp", help="run the SAMP bridge without a GUI")
    p.add_argument("session", type=Path)
    p.add_argument("--broadcast", action="store_true", help="send the candidate table to all")
    p.add_argument("--arm", metavar="CLASS", help="label incoming selections as CLASS")
    p.add_argument("--own-hub", action="store_true", help="start a hub if none is running")
    p.add_argument("--id-column", default="id")
    p.add_argument("--label-column", default="label")
    p.set_defaults(func=_cmd_samp)

    p = commands.add_parser("gui", help="the desktop app")
    p.add_argument("session", type=Path, nargs="?")
    p.add_argument("--screenshot", type=Path, help="render the window to this PNG and exit")
    p.set_defaults(func=_cmd_gui)


# ---------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every sub-command."""
    parser = argparse.ArgumentParser(prog="vo-al", description=__doc__)
    parser.add_argument("--version", action="version", version=f"vo-al {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    p = commands.add_parser("inspect", help="describe spectrum files")
    p.add_argument("files", nargs="+")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=_cmd_inspect)

    p = commands.add_parser("synth", help="write a synthetic survey in the real file layouts")
    p.add_argument("outdir", type=Path)
    p.add_argument("--lamost", type=int, default=1000, help="LAMOST-layout files")
    p.add_argument("--ondrejov", type=int, default=0, help="Ondřejov CCD700 files")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--emission-fraction", type=float, default=0.003,
                   help="fraction of LAMOST spectra with Hα emission (real DR2: 0.003)")
    p.add_argument("--corrupt", type=int, default=0, help="broken files to add")
    p.add_argument("--workers", type=int, default=None)
    p.add_argument("--pool", "--hdf5", action="store_true",
                   help="write OUTDIR/pool.h5 (LAMOST), OUTDIR/train.h5 (Ondřejov, labelled) "
                        "and truth.csv directly, as `vo-al ingest` would build them; no FITS")
    p.add_argument("--wave-min", type=float, default=6519.0, help="with --pool")
    p.add_argument("--wave-max", type=float, default=6732.0, help="with --pool")
    p.add_argument("--points", type=int, default=140, help="with --pool")
    p.add_argument("--blur", choices=("resolution", "fixed", "none"), default="resolution",
                   help="with --pool")
    p.add_argument("--shard-rows", type=int, default=4096,
                   help="with --pool: spectra per resumable shard")
    p.add_argument("--overwrite", action="store_true", help="with --pool: replace the pools")
    p.set_defaults(func=_cmd_synth)

    p = commands.add_parser("ingest", help="build an HDF5 pool from spectrum files")
    p.add_argument("inputs", nargs="+", help="files, directories or text files of paths")
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--labels", type=Path, help="CSV with id or file, and label (or class)")
    p.add_argument("--workers", type=int, default=None, help="default: all cores")
    p.add_argument("--wave-min", type=float, default=6519.0)
    p.add_argument("--wave-max", type=float, default=6732.0)
    p.add_argument("--points", type=int, default=140)
    p.add_argument("--blur", choices=("resolution", "fixed", "none"), default="resolution")
    p.add_argument("--overwrite", action="store_true", help="replace a completed pool")
    p.add_argument("--shard-rows", type=int, default=4096,
                   help="files per shard: the most a kill can lose")
    p.set_defaults(func=_cmd_ingest)

    p = commands.add_parser(
        "demo", help="generate a demo survey, ingest it, run a few simulated iterations")
    p.add_argument("--dir", default="vo-al-demo")
    p.add_argument("--lamost", type=int, default=10000,
                   help="LAMOST-like pool spectra (default: 10000)")
    p.add_argument("--ondrejov", type=int, default=1500,
                   help="labelled Ondřejov-like training spectra (default: 1500)")
    p.add_argument("--emission-fraction", type=float, default=0.03,
                   help="share of interesting pool spectra (default 0.03: ten times the "
                        "real 0.003 so a small demo has something to find)")
    p.add_argument("--iterations", type=int, default=8,
                   help="simulated iterations (default: 8)")
    p.add_argument("--baseline", action="store_true",
                   help="also run a random-query twin for comparison (twice the time)")
    p.add_argument("--query-size", type=int, default=50, help="queries per iteration (50)")
    p.add_argument("--estimate-size", type=int, default=10,
                   help="estimate sample per iteration (default 10: a small pool's interesting "
                        "spectra must not all go to estimate samples, which are never trained "
                        "on; the paper: 30 of 4.1 million)")
    p.add_argument("--answer-weight", type=float, default=20.0,
                   help="weight of each oracle answer in training, against 1 for a "
                        "training-set spectrum (default: 20; the paper: 1)")
    p.add_argument("--max-epochs", type=int, default=6, help="default: 6")
    p.add_argument("--no-gui", action="store_true",
                   help="do not open the desktop app at the end (it opens when DISPLAY is set)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--workers", type=int, default=None)
    p.set_defaults(func=_cmd_demo)
    _add_session_commands(commands)
    return parser


_CNN_COMMANDS = {"iterate", "simulate", "demo", "gui", "samp"}


#: Exit status of a user or input error (as argparse's usage errors).
EXIT_USAGE = 2
#: Exit status after Ctrl-C (128 + SIGINT).
EXIT_INTERRUPTED = 130
#: Exit status when another iteration holds the session (sysexits' EX_TEMPFAIL: try later).
EXIT_BUSY = 75


def _user_errors() -> tuple[type[BaseException], ...]:
    """Errors that mean the input or the request is wrong, not vo-al."""
    from .labelfile import LabelFileError
    from .labellog import LabelLogError
    from .pool import InputsChangedError, NoSpectraError
    from .session import SessionError
    from .spectra import SpectrumReadError
    from .train import CheckpointError

    return (SessionError, LabelFileError, LabelLogError, InputsChangedError, NoSpectraError,
            SpectrumReadError, CheckpointError, OSError)


def main(argv=None) -> int:
    """Entry point of the ``vo-al`` console script.

    A user error or an interrupt prints one line and exits with
    :data:`EXIT_USAGE` (2), :data:`EXIT_BUSY` (75, another iteration holds
    the session) or :data:`EXIT_INTERRUPTED` (130); a traceback
    appears only for a bug in vo-al, and then says so.
    """
    args = build_parser().parse_args(argv)
    if args.command in _CNN_COMMANDS:
        from .runtime import tune_allocator

        tune_allocator()  # before torch's first large buffers: ~1.8x CPU throughput
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print(f"vo-al {args.command}: interrupted; nothing half-done was kept",
              file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # `vo-al queue ... | head`: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except IterationLocked as exc:
        print(f"vo-al {args.command}: {exc}", file=sys.stderr)
        return EXIT_BUSY
    except _user_errors() as exc:
        print(f"vo-al {args.command}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except Exception:
        print(f"vo-al {args.command}: this is a bug in vo-al; please report it with the "
              f"traceback below", file=sys.stderr)
        raise


if __name__ == "__main__":
    sys.exit(main())
