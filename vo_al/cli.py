"""The ``vo-al`` command line: one sub-command per task, each a thin call
into the library."""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
from pathlib import Path

from . import __version__
from .lock import IterationLocked

__all__ = ["main", "build_parser"]


class _Progress:
    """A tqdm bar fed by ``(done, total)`` callbacks, on stderr.

    Its rate is measured from the first report on (work done before it took
    an unknown time), so none is shown until a second report."""

    def __init__(self, description: str, unit: str):
        from tqdm import tqdm

        self._bar = tqdm(desc=description, unit=unit, file=sys.stderr, dynamic_ncols=True,
                         disable=None)
        self._description = description
        self._reported = False

    def __call__(self, done: int, total: int):
        if not self._reported:
            self._reported = True
            self._bar.reset(total)  # the clock starts at the first report
            self._bar.initial = done
        self._bar.total = total
        self._bar.n = done
        self._bar.refresh()

    def stop_early(self, unit: str):
        """End the bar at 100 % where the work stopped, saying so (early stopping)."""
        bar = self._bar
        if not bar.disable and bar.total and bar.n < bar.total:
            bar.set_description(f"{self._description} (stopped early at {unit} {bar.n})",
                                refresh=False)
            bar.total = bar.n
            bar.refresh()

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
    from .options import PreprocessConfig

    if args.corrupt:
        print("vo-al synth: --corrupt needs files; it cannot be combined with --pool",
              file=sys.stderr)
        return EXIT_USAGE
    config = PreprocessConfig(wave_min=args.wave_min, wave_max=args.wave_max,
                              n_points=args.points, blur=args.blur)
    return _write_pools(args.outdir, config, n_lamost=args.lamost, n_ondrejov=args.ondrejov,
                        seed=args.seed, emission_fraction=args.emission_fraction,
                        workers=args.workers, shard_rows=args.shard_rows,
                        overwrite=args.overwrite)


def _write_pools(outdir, config, **survey) -> int:
    """Generate a survey's pools (:func:`vo_al.synth.generate_pools`) with a progress bar."""
    from .pool import InputsChangedError, PoolExistsError
    from .synth import generate_pools

    bar = _Progress("synth", "spectrum")
    try:
        report = generate_pools(outdir, config=config, progress=bar, **survey)
    except (PoolExistsError, InputsChangedError, ValueError) as exc:
        print(f"vo-al synth: {exc}", file=sys.stderr)
        return EXIT_USAGE
    finally:
        bar.close()
    print(report.summary())
    return 0


# ---------------------------------------------------------------- ingest


def _cmd_ingest(args) -> int:
    from .labelfile import LabelFileError, read_label_csv
    from .pool import InputsChangedError, PoolExistsError, ingest, rejected_csv_path
    from .options import PreprocessConfig

    try:
        labels = read_label_csv(args.labels) if args.labels else None
    except (LabelFileError, OSError) as exc:
        print(f"vo-al ingest: {exc}", file=sys.stderr)
        return 2
    config = PreprocessConfig(wave_min=args.wave_min, wave_max=args.wave_max,
                              n_points=args.points, blur=args.blur)
    bar = _Progress("ingest", "file")
    try:
        with _dask_client(args) as client:
            report = ingest(args.inputs, args.out, labels=labels, workers=args.workers,
                            config=config, overwrite=args.overwrite, progress=bar,
                            shard_rows=args.shard_rows, client=client)
    except (PoolExistsError, InputsChangedError) as exc:
        print(f"vo-al ingest: {exc}", file=sys.stderr)
        return 2
    finally:
        bar.close()
    _print_ingest_report(report, rejected_csv_path(args.out))
    return 0


def _count(n: int, one: str, many: str | None = None) -> str:
    return f"{n:,} {one if n == 1 else many or one + 's'}"


def _print_ingest_report(report, rejected_csv):
    """The ingest summary in sentences."""
    from .preprocess import Quality

    resumed = (f", resuming after {_count(report.resumed_inputs, 'file')} done before"
               if report.resumed_inputs else "")
    print(f"Wrote {report.pool}: {_count(report.n_spectra, 'spectrum', 'spectra')} "
          f"from {_count(report.n_inputs, 'file')}{resumed}.")
    why = ", ".join(f"{n:,} {Quality[name].reason}"
                    for name, n in sorted(report.quality_counts.items())
                    if Quality[name] != Quality.OK and n)
    print(f"{report.n_usable:,} can be scored; {report.n_unusable:,} are kept but never scored"
          + (f" ({why})." if why else "."))
    print(f"{_count(report.n_rejected, 'file')} could not be read and "
          f"{_count(report.n_duplicates, 'duplicate id')} were dropped"
          + (f"; each is listed with its reason in {rejected_csv}."
             if report.n_rejected or report.n_duplicates else "."))
    if report.n_labelled:
        print(f"{report.n_labelled:,} spectra carry a training label.")
    print(f"It took {report.seconds:.1f} s ({report.files_per_second:,.0f} files/s).")


# ---------------------------------------------------------------- fetch


def _cmd_fetch(args) -> int:
    """Search an SSA service, download its spectra into a folder, label them."""
    from .fetch import fetch_service
    from .fetchlabels import read_record_labels, write_labels
    from .ssa import FetchError, FetchOptions, read_positions

    bar = _Progress("fetch", "file")
    try:
        if not args.radius > 0 or args.workers < 1:
            raise FetchError("--radius must be positive and --workers at least 1")
        pairs = (read_record_labels(args.labels_from, args.id_column, args.label_column)
                 if args.labels_from else None)
        positions = (read_positions(args.positions, args.radius) if args.positions
                     else [(*args.pos, args.radius)] if args.pos else None)
        options = FetchOptions(workers=args.workers, timeout_s=args.timeout)
        report = fetch_service(args.url, args.out, positions, options=options, progress=bar)
        labels = write_labels(args.out, pairs) if pairs is not None else None
    except FetchError as exc:
        print(f"vo-al fetch: {exc}", file=sys.stderr)
        return EXIT_USAGE
    finally:
        bar.close()
    _print_fetch_report(report, labels)
    if report.failed:
        print(f"vo-al fetch: {_count(len(report.failed), 'record')} could not be downloaded; "
              f"run the same command again to retry them", file=sys.stderr)
        return EXIT_USAGE
    return 0


def _print_fetch_report(report, labels):
    """The fetch summary in sentences, then the records that gave no file."""
    if not report.records:
        print(f"{report.directory}: the service lists no record for this search.")
        return
    print(f"{report.directory}: {_count(report.files, 'spectrum file')} for "
          f"{_count(report.records, 'record')} ({report.fetched:,} fetched now, "
          f"{report.present:,} there before; {report.via_datalink:,} through DataLink; "
          f"{_count(report.duplicates, 'duplicate record')}).")
    print(f"Fetched {report.fetched_bytes / 2**20:,.1f} MiB in {report.seconds:.1f} s "
          f"({report.files_per_second:,.1f} files/s).")
    problems = [("refused", report.refused), ("failed", report.failed),
                ("no access URL", report.no_access)]
    if any(rows for _, rows in problems):
        print(f"No file for {', '.join(f'{len(rows):,} {what}' for what, rows in problems)}; "
              f"each is listed with its reason in {report.manifest}:")
        listed = [(what, row) for what, rows in problems for row in rows]
        for what, (name, reason) in listed[:20]:
            reason = reason if len(reason) <= 160 else f"{reason[:159]}…"
            print(f"  {name}: {what}: {reason}")
        if len(listed) > 20:
            print(f"  … and {len(listed) - 20:,} more")
    if labels is not None:
        print(f"Wrote {labels.path}: {_count(labels.labelled, 'labelled file')}"
              + (f"; {_count(len(labels.unmatched), 'table row')} named no fetched file"
                 if labels.unmatched else "")
              + (f"; {_count(len(labels.conflicts), 'file')} given two labels left out"
                 if labels.conflicts else "") + ".")
    labels_option = f" --labels {labels.path}" if labels is not None else ""
    print(f"Next: {_vo_al_command()} ingest {report.directory}{labels_option} --out POOL.h5")


# ---------------------------------------------------------------- demo


def _cmd_demo(args) -> int:
    """A demo survey straight into HDF5, then a simulated loop beside a
    random-query baseline, judged on the spectra the model has not seen."""
    from .curves import plot_curves, summary_table
    from .options import PreprocessConfig

    out = Path(args.dir)
    survey = out / "survey"
    if not (survey / "train.h5").exists():
        status = _write_pools(survey, PreprocessConfig(), n_lamost=args.lamost,
                              n_ondrejov=args.ondrejov, seed=args.seed,
                              emission_fraction=args.emission_fraction, workers=args.workers)
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
    return _open_gui(session_dir)


def _demo_loop(args, survey: Path, session_dir: Path) -> dict | None:
    """Run (or continue) the demo session and its baseline; never deletes labels."""
    from .loop import IterationOptions
    from .workspace import Workspace

    if not (session_dir / "config.json").exists():
        Workspace.create(session_dir, survey / "train.h5", survey / "pool.h5", seed=args.seed,
                         query_size=args.query_size, estimate_size=args.estimate_size).close()
    options = IterationOptions(mode="warm", max_epochs=args.max_epochs, patience=3,
                               answer_weight=args.answer_weight)
    progress = _LoopProgress()

    def show(report):
        progress.close()
        print(_simulation_line(report), flush=True)

    with Workspace.open(session_dir) as workspace:
        left = max(0, args.iterations - workspace.iteration)
        if workspace.iteration:
            print(f"continuing {session_dir} after iteration {workspace.iteration} "
                  f"(its labels are kept; --dir elsewhere starts afresh)")
        try:
            workspace.simulate(survey / "truth.csv", left, options, on_iteration=show,
                               progress=progress, baseline=None if args.no_baseline else "random")
        finally:
            progress.close()
        results = {workspace.config.strategy: workspace.simulation_records()}
    twin = session_dir / "baselines" / "random"
    if not args.no_baseline and twin.is_dir():
        with Workspace.open(twin) as baseline:
            results["random"] = baseline.simulation_records()
    return results


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


def _open(path):
    from .workspace import Workspace

    return Workspace.open(path)


def _cmd_init(args) -> int:
    from .workspace import Workspace

    options = {"seed": args.seed, "strategy": args.strategy, "query_size": args.query_size,
               "estimate_size": args.estimate_size}
    if args.classes:
        options["class_names"] = args.classes.split(",")
    with Workspace.create(args.session, args.train, args.pool, **options) as workspace:
        print(f"session {args.session}: classes {', '.join(workspace.config.class_names)}; "
              f"train {args.train}, pool {args.pool}")
    return 0


def _cmd_relocate(args) -> int:
    from .workspace import Workspace

    if args.pool is None and args.train is None:
        print("vo-al relocate: give --pool NEW_PATH, --train NEW_PATH or both", file=sys.stderr)
        return EXIT_USAGE
    with Workspace.relocate(args.session, pool_path=args.pool, train_path=args.train) as ws:
        print(f"session {args.session}: pool {ws.config.pool_path}, "
              f"train {ws.config.train_path}")
    return 0


def _iteration_options(args):
    from .options import IterationOptions, ScoreConfig

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
            return
        if "train" in self._bars:  # training is over: before max_epochs, it stopped early
            self._bars["train"].stop_early("epoch")
        if step == "score":
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
    progress = _LoopProgress()
    with _open(args.session) as workspace, _dask_client(args) as client:
        try:
            result = workspace.iterate(_iteration_options(args), progress=progress,
                                       client=client)
        finally:
            progress.close()
    m = result.metrics
    print(f"iteration {result.iteration}: trained on {m['n_train']} spectra "
          f"({m['epochs']} epochs, {m['train_s']:.1f} s), scored {m['n_scored']} "
          f"({m['score_s']:.1f} s, {m['scoring_precision']}), predicted {m['predicted_counts']}")
    print(f"  query: {len(result.query)} spectra to label; estimate sample: "
          f"{len(result.estimate)} (see `vo-al queue {args.session}`)")
    return 0


def _queue_rows(queue) -> list[dict]:
    return [{"id": queue.ids[i], "kind": queue.kind[i], "answer": queue.answer[i] or None,
             "predicted": queue.predicted(i) or None} for i in range(len(queue))]


def _cmd_queue(args) -> int:
    with _open(args.session) as workspace:
        queue = workspace.batch()
    n, rows = queue.iteration, _queue_rows(queue)
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

    with _open(args.session) as workspace:
        try:
            entry = workspace.label(args.id, args.label, source="cli", sender=args.sender)
        except LabelRefused as exc:
            print(f"vo-al label: refused: {exc}", file=sys.stderr)
            return 2
    print(f"labelled {entry.spectrum_id} as {entry.label or entry.action} "
          f"({entry.purpose}, iteration {entry.iteration}, #{entry.seq})")
    return 0


def _cmd_undo(args) -> int:
    with _open(args.session) as workspace:
        entry = workspace.undo(source="cli", sender=args.sender)
        undone = entry and workspace.entries(spectrum_id=entry.spectrum_id)
    if entry is None:
        print("nothing to undo")
        return 1
    print(f"undid #{entry.undoes} ({entry.spectrum_id}); "
          f"{len(undone)} entries for it in the log")
    return 0


def _cmd_labels(args) -> int:
    with _open(args.session) as workspace:
        entries = workspace.entries()
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
    with _open(args.session) as workspace:
        result = workspace.import_labels(pairs, source="import", sender=Path(args.file).name)
    print(f"imported {len(result.accepted)} labels from {args.file}; "
          f"{result.unchanged} already in force; refused {len(result.refused)}")
    for spectrum_id, reason in result.refused[:20]:
        print(f"  {spectrum_id}: {reason}", file=sys.stderr)
    if len(result.refused) > 20:
        print(f"  ... and {len(result.refused) - 20} more", file=sys.stderr)
    return EXIT_USAGE if result.refused else 0


def _cmd_export(args) -> int:
    with _open(args.session) as workspace:
        try:
            rows = workspace.export(args.out, args.iteration)
        except ValueError as exc:
            print(f"vo-al export: {exc}", file=sys.stderr)
            return EXIT_USAGE
    print(f"wrote {rows} candidates to {args.out}")
    return 0


def _catalogues_from(args, workspace) -> list | None:
    """The catalogues ``vo-al crossmatch`` names: one given by its source,
    or the remembered ones (all, or the one named with ``--as``); None: all
    remembered, as they are."""
    from .catalogues import CrossmatchError, file_catalogue, simbad, tap_catalogue

    columns = {"id": args.id_column, "ra": args.ra_column, "dec": args.dec_column,
               "type": args.type_column}
    radius = args.radius
    if args.simbad:
        return [simbad(radius, columns, args.name or "simbad")]
    if args.tap:
        return [tap_catalogue(args.tap, args.table, args.name, radius, columns)]
    if args.file:
        return [file_catalogue(args.file, args.name, radius, columns)]
    if args.name is None and radius is None and not any(columns.values()):
        return None
    remembered = [c for c in workspace.matched_catalogues()
                  if args.name is None or c.name == args.name]
    if not remembered:
        raise CrossmatchError(f"no catalogue named {args.name!r} was matched in "
                              f"{args.session}: give its source (--simbad, --tap, --file)")
    return [c.with_options(args.radius, columns) for c in remembered]


def _cmd_crossmatch(args) -> int:
    from .options import TapOptions

    if args.tap and not args.table:
        print("vo-al crossmatch: --tap needs --table TABLE", file=sys.stderr)
        return EXIT_USAGE
    options = TapOptions(chunk_rows=args.chunk_rows, mode=args.mode)
    bars = {}

    def progress(name, done, total):
        if name not in bars:
            bars[name] = _Progress(f"matching {name}", "spectra")
        bars[name](done, total)

    with _open(args.session) as workspace:
        try:
            summaries = workspace.crossmatch(_catalogues_from(args, workspace),
                                             refresh=args.refresh, iteration=args.iteration,
                                             options=options, progress=progress)
        finally:
            for bar in bars.values():
                bar.close()
    if args.json:
        _print_json([{"catalogue": s.catalogue.to_dict(), "queried": s.queried,
                      "found": s.found, "stored": s.stored, "known": s.known,
                      "seconds": round(s.seconds, 3)} for s in summaries])
        return 0
    for s in summaries:
        done = (f"matched {_count(s.queried, 'new candidate')} ({s.found} found) in "
                f"{s.seconds:.1f} s" if s.queried else "no new candidates")
        print(f"{s.catalogue.where}: {done}; {s.known} of {s.stored} spectra matched so far "
              f"are in it")
    print(f"see `vo-al report {args.session}`")
    return 0


def _cmd_report(args) -> int:
    from .atomic import write_text_atomic
    from .report import format_report

    with _open(args.session) as workspace:
        try:
            report = workspace.report(args.iteration, args.min_probability, args.labelled_only)
        except ValueError as exc:
            print(f"vo-al report: {exc}", file=sys.stderr)
            return EXIT_USAGE
    as_json = args.json or (args.out is not None and args.out.suffix.lower() == ".json")
    text = json.dumps(report, indent=2, sort_keys=True) if as_json else format_report(report)
    if args.out is None:
        print(text)
    else:
        write_text_atomic(args.out, text + "\n")
        print(f"wrote the report to {args.out}")
    return 0


def _cmd_status(args) -> int:
    with _open(args.session) as workspace:
        n = workspace.iteration
        status = {"session": str(args.session), "iteration": n,
                  "label_counts": workspace.label_counts(),
                  "learning_curve": workspace.learning_curve(),
                  "metrics": workspace.metrics()}
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
    progress = None if args.json else _LoopProgress()

    def show(report):
        if progress is not None:
            progress.close()
            print(_simulation_line(report), flush=True)

    try:
        with _open(args.session) as workspace, _dask_client(args) as client:
            reports = workspace.simulate(args.truth, args.iterations, _iteration_options(args),
                                         on_iteration=show, progress=progress,
                                         baseline=None if args.no_baseline else args.baseline,
                                         client=client)
    finally:
        if progress is not None:
            progress.close()
    if args.json:
        _print_json(reports)
    return 0


def _cmd_samp(args) -> int:
    from .samp.headless import run

    return run(args.session, broadcast=args.broadcast, arm=args.arm, own_hub=args.own_hub,
               id_column=args.id_column, label_column=args.label_column, trust=args.trust)


def _cmd_gui(args) -> int:
    return _open_gui(args.session, screenshot=args.screenshot)


def _open_gui(session, screenshot=None) -> int:
    try:
        from vo_al.gui.app import main as gui_main
    except ImportError as exc:  # PyQt5 or pyqtgraph missing
        print(f"vo-al gui: the desktop app needs PyQt5 and pyqtgraph "
              f"(pip install 'vo-al[gui]'): {exc}", file=sys.stderr)
        return EXIT_USAGE
    return gui_main(session, screenshot=screenshot)


class _Help(argparse.HelpFormatter):
    """Help with each option's default, where it has one worth showing."""

    def _get_help_string(self, action):
        text = action.help or ""
        default = action.default
        if ("%(default)" in text or "default:" in text or default is None or default is False
                or default is argparse.SUPPRESS or not action.option_strings):
            return text
        return f"{text} (default: %(default)s)"


def _add_dask_options(p):
    """``--dask`` / ``--dask-scheduler-file``: the heavy work on a Dask cluster."""
    group = p.add_mutually_exclusive_group()
    group.add_argument("--dask", metavar="ADDRESS",
                       help="run on a Dask cluster: a scheduler (tcp://host:8786), or local:N "
                            "for N worker processes started here (docs/cluster.md)")
    group.add_argument("--dask-scheduler-file", type=Path, metavar="FILE",
                       help="run on the Dask cluster whose scheduler wrote FILE")


def _dask_client(args):
    """A context giving the Dask client that ``args`` names, or None."""
    import contextlib

    if args.dask is None and args.dask_scheduler_file is None:
        return contextlib.nullcontext()
    try:
        from .distributed import connect
    except ImportError as exc:
        print(f"vo-al {args.command}: --dask needs dask.distributed "
              f"(pip install 'vo-al[dask]'): {exc}", file=sys.stderr)
        raise SystemExit(EXIT_USAGE) from exc
    return connect(args.dask, args.dask_scheduler_file)


def _add_iteration_options(p):
    from .options import IterationOptions, ScoreConfig
    from .strategies import STRATEGIES

    loop, score = IterationOptions(), ScoreConfig()
    p.add_argument("--strategy", choices=sorted(STRATEGIES),
                   help="query strategy (default: the session's)")
    p.add_argument("--query-size", type=int, help="spectra to query (default: the session's)")
    p.add_argument("--estimate-size", type=int,
                   help="random spectra predicted interesting, drawn to estimate the precision "
                        "(default: the session's)")
    p.add_argument("--warm-start", action="store_true", help="start from the last weights")
    p.add_argument("--head-only", action="store_true", help="fine-tune only the dense head")
    p.add_argument("--max-epochs", type=int, default=loop.max_epochs,
                   help="most training epochs")
    p.add_argument("--patience", type=int, default=loop.patience,
                   help="epochs without a better validation loss before stopping")
    p.add_argument("--cache-features", action="store_true",
                   help="keep trunk features (1 KB/spectrum) so --head-only rescoring is cheap")
    p.add_argument("--diversity", choices=("kmeans++", "coreset"),
                   help="spread the batch out in the network's feature space")
    p.add_argument("--mc-samples", type=int,
                   help="MC-dropout samples (default: 20 for bald, else none)")
    p.add_argument("--precision", choices=("auto", "fp32", "bf16"), default=score.precision,
                   help="scoring arithmetic; auto uses bf16 where the CPU or GPU has it and "
                        "it agrees with fp32")
    p.add_argument("--batch-size", type=int, default=score.batch_size,
                   help="spectra per scoring pass")
    p.add_argument("--answer-weight", type=float, default=loop.answer_weight,
                   help="weight of each oracle answer in the training loss, against 1 for a "
                        "training-set spectrum (1 is the paper's)")
    p.add_argument("--paper", action="store_true",
                   help="train with the paper's settings exactly (docs/method.md): from "
                        "scratch, SMOTE, early stopping on the training loss, patience 10")


def _add_crossmatch_command(commands):
    from .catalogues import DEFAULT_RADIUS_ARCSEC, VIZIER_TAP
    from .options import TapOptions

    options = TapOptions()
    p = commands.add_parser("crossmatch", help="match candidates with SIMBAD or a catalogue "
                                               "(TAP service or file)")
    p.add_argument("session", type=Path, help="session directory")
    source = p.add_mutually_exclusive_group()
    source.add_argument("--simbad", action="store_true",
                        help="SIMBAD's basic table on its TAP service (VO_AL_SIMBAD_TAP and "
                             "VO_AL_SIMBAD_TABLE override the service and table)")
    source.add_argument("--tap", metavar="URL",
                        help=f"a TAP service, with --table (VizieR's: {VIZIER_TAP})")
    source.add_argument("--file", type=Path, metavar="PATH",
                        help="a catalogue file astropy reads (VOTable, FITS, CSV, ECSV)")
    p.add_argument("--table", help="the ADQL table of --tap (e.g. \"J/ApJS/259/38/table1\")")
    p.add_argument("--as", dest="name", metavar="NAME",
                   help="short name of the catalogue: its column prefix and report key "
                        "(default: simbad, or the table or file name); alone, rematch only "
                        "that remembered catalogue")
    p.add_argument("--radius", type=float, metavar="ARCSEC",
                   help=f"match radius in arcsec (default: {DEFAULT_RADIUS_ARCSEC:g}, or the "
                        f"remembered one)")
    for role, what in (("id", "identifier (UCD meta.id;meta.main, else main_id)"),
                       ("type", "object type (UCD src.class, else otype)"),
                       ("ra", "right ascension (UCD pos.eq.ra;meta.main, else ra)"),
                       ("dec", "declination (UCD pos.eq.dec;meta.main, else dec)")):
        p.add_argument(f"--{role}-column", metavar="C", help=f"the catalogue's column of the "
                                                               f"{what}")
    p.add_argument("--refresh", action="store_true",
                   help="match every candidate again, not only those never matched")
    p.add_argument("--iteration", type=int,
                   help="whose predictions make the candidates (default: the latest)")
    p.add_argument("--chunk-rows", type=int, default=options.chunk_rows,
                   help="candidates uploaded per TAP query")
    p.add_argument("--mode", choices=("auto", "sync", "async"), default=options.mode,
                   help="TAP queries: auto is one sync query when one chunk holds every "
                        "candidate, else an async job per chunk")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=_cmd_crossmatch)


def _add_fetch_command(commands):
    from .options import KEY_COLUMNS, FetchOptions

    options = FetchOptions()
    p = commands.add_parser("fetch", help="download the spectra of an SSA archive into a "
                                          "folder (DataLink too) for `vo-al ingest`")
    p.add_argument("url", metavar="SSA_URL", help="the SSA service (e.g. …/ssa/ssap.xml)")
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--pos", nargs=2, type=float, metavar=("RA", "DEC"),
                       help="search around this ICRS position (degrees)")
    where.add_argument("--positions", type=Path, metavar="TABLE",
                       help="search around each row's ra, dec (CSV, VOTable, FITS, ECSV; "
                            "a radius column overrides --radius)")
    where.add_argument("--all", action="store_true", help="every record of the service")
    p.add_argument("--radius", type=float, default=0.01, metavar="DEG",
                   help="search radius in degrees")
    p.add_argument("--out", required=True, type=Path, metavar="DIR",
                   help="folder of the spectra and manifest.csv; an earlier fetch there "
                        "is resumed")
    p.add_argument("--labels-from", type=Path, metavar="TABLE",
                   help="a CSV or VOTable naming records and their label (or class): "
                        "written as DIR/labels.csv for `vo-al ingest --labels`")
    p.add_argument("--id-column", metavar="COLUMN",
                   help=f"column of --labels-from naming the record (default: the first of "
                        f"{', '.join(KEY_COLUMNS)})")
    p.add_argument("--label-column", metavar="COLUMN",
                   help="column of --labels-from with the label (default: label, else class)")
    p.add_argument("--workers", type=int, default=options.workers, metavar="N",
                   help="downloads at a time")
    p.add_argument("--timeout", type=float, default=options.timeout_s, metavar="S",
                   help="seconds without an answer before a request is tried again")
    p.set_defaults(func=_cmd_fetch)


def _add_session_commands(commands):
    from .options import SessionConfig
    from .strategies import STRATEGIES

    defaults = SessionConfig(train_path="", pool_path="")
    user = os.environ.get("USER", "")
    p = commands.add_parser("init", help="create an active-learning session")
    p.add_argument("session", type=Path, help="new (or empty) session directory")
    p.add_argument("--train", required=True, type=Path, help="labelled training pool (HDF5)")
    p.add_argument("--pool", required=True, type=Path, help="pool to search (HDF5)")
    p.add_argument("--classes", help="comma-separated class names, the first not interesting "
                                     f"(default: {','.join(defaults.class_names)})")
    p.add_argument("--strategy", default=defaults.strategy, choices=sorted(STRATEGIES),
                   help="query strategy")
    p.add_argument("--query-size", type=int, default=defaults.query_size,
                   help="spectra to query per iteration")
    p.add_argument("--estimate-size", type=int, default=defaults.estimate_size,
                   help="spectra predicted interesting drawn per iteration to estimate the "
                        "precision (never trained on)")
    p.add_argument("--seed", type=int, default=defaults.seed,
                   help="seed of training, sampling and MC dropout")
    p.set_defaults(func=_cmd_init)

    p = commands.add_parser("relocate", help="tell a session where its moved pools are now")
    p.add_argument("session", type=Path, help="session directory")
    p.add_argument("--pool", type=Path, help="the pool's new path")
    p.add_argument("--train", type=Path, help="the training set's new path")
    p.set_defaults(func=_cmd_relocate)

    p = commands.add_parser("iterate", help="train, score the pool, choose the next batch")
    p.add_argument("session", type=Path, help="session directory")
    _add_iteration_options(p)
    _add_dask_options(p)
    p.set_defaults(func=_cmd_iterate)

    p = commands.add_parser("queue", help="what to label now")
    p.add_argument("session", type=Path, help="session directory")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--all", action="store_true", help="also the answered ones")
    p.set_defaults(func=_cmd_queue)

    p = commands.add_parser("label", help="label one spectrum")
    p.add_argument("session", type=Path, help="session directory")
    p.add_argument("id", help="the spectrum's id in the pool")
    p.add_argument("label", help="a class name, an alias, or the skip name (skip)")
    p.add_argument("--sender", default=user, help="who answers, kept in the label log")
    p.set_defaults(func=_cmd_label)

    p = commands.add_parser("undo", help="take back the latest answer")
    p.add_argument("session", type=Path, help="session directory")
    p.add_argument("--sender", default=user, help="who undoes, kept in the label log")
    p.set_defaults(func=_cmd_undo)

    p = commands.add_parser("labels", help="the label log with provenance")
    p.add_argument("session", type=Path, help="session directory")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=_cmd_labels)

    p = commands.add_parser("import-labels", help="labels from a CSV or VOTable")
    p.add_argument("session", type=Path, help="session directory")
    p.add_argument("file", type=Path, help=".csv, .vot or .xml table")
    p.add_argument("--id-column", default="id", help="column of spectrum ids")
    p.add_argument("--label-column", default="label",
                   help="column of class names (class is accepted when it is missing)")
    p.set_defaults(func=_cmd_import_labels)

    p = commands.add_parser("export", help="candidate table as .vot, .fits or .csv")
    p.add_argument("session", type=Path, help="session directory")
    p.add_argument("out", type=Path, help="file to write; its suffix names the format")
    p.add_argument("--iteration", type=int, help="whose model (default: the latest)")
    p.set_defaults(func=_cmd_export)

    _add_crossmatch_command(commands)
    p = commands.add_parser("report", help="discovery report: new and known candidates per "
                                           "class, in spectra and objects")
    p.add_argument("session", type=Path, help="session directory")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--out", type=Path,
                   help="write the report to this file (JSON when it ends in .json)")
    p.add_argument("--iteration", type=int, help="whose predictions count (default: the latest)")
    p.add_argument("--min-probability", type=float, metavar="P",
                   help="count an unlabelled spectrum only when its predicted class has at "
                        "least this probability (default: any predicted interesting)")
    p.add_argument("--labelled-only", action="store_true",
                   help="count labelled spectra only, not predictions")
    p.set_defaults(func=_cmd_report)

    p = commands.add_parser("status", help="iteration, label counts, learning curve")
    p.add_argument("session", type=Path, help="session directory")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=_cmd_status)

    p = commands.add_parser("simulate", help="run the loop answered from a truth table")
    p.add_argument("session", type=Path, help="session directory")
    p.add_argument("--truth", required=True, type=Path,
                   help="CSV with id and class (e.g. a synthetic survey's truth.csv)")
    p.add_argument("--iterations", type=int, default=5, help="iterations to run")
    p.add_argument("--json", action="store_true", help="print the reports as JSON")
    p.add_argument("--baseline", default="random",
                   help="strategy of the baseline twin run on the same survey, in "
                        "SESSION/baselines/NAME")
    p.add_argument("--no-baseline", action="store_true", help="run no baseline")
    _add_iteration_options(p)
    _add_dask_options(p)
    p.set_defaults(func=_cmd_simulate)

    p = commands.add_parser("samp", help="run the SAMP bridge without a GUI")
    p.add_argument("session", type=Path, help="session directory")
    p.add_argument("--broadcast", action="store_true",
                   help="send the candidate table to every client that takes tables, when it "
                        "subscribes")
    p.add_argument("--arm", metavar="CLASS", help="label incoming selections as CLASS")
    p.add_argument("--own-hub", action="store_true", help="start a hub if none is running")
    p.add_argument("--id-column", default="id", help="id column of incoming label tables")
    p.add_argument("--label-column", default="label",
                   help="class column of incoming label tables")
    p.add_argument("--trust", metavar="NAME", action="append", default=[],
                   help="also take labels and file: URLs from the SAMP client of this "
                        "samp.name (repeatable; desktop tools such as topcat and stilts are "
                        "trusted by default)")
    p.set_defaults(func=_cmd_samp)

    p = commands.add_parser("gui", help="the desktop app")
    p.add_argument("session", type=Path, nargs="?",
                   help="session directory (default: ask, offering the last one)")
    p.add_argument("--screenshot", type=Path, help="render the window to this PNG and exit")
    p.set_defaults(func=_cmd_gui)


# ---------------------------------------------------------------- parser


def _add_preprocess_options(p, note: str = ""):
    from .options import PreprocessConfig

    config = PreprocessConfig()
    p.add_argument("--wave-min", type=float, default=config.wave_min,
                   help=f"start of the window, Å{note}")
    p.add_argument("--wave-max", type=float, default=config.wave_max,
                   help=f"end of the window, Å{note}")
    p.add_argument("--points", type=int, default=config.n_points,
                   help=f"points of the network's input vector{note}")
    p.add_argument("--blur", choices=("resolution", "fixed", "none"), default=config.blur,
                   help=f"bring spectra to LAMOST's resolution{note}")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every sub-command."""
    parser = argparse.ArgumentParser(prog="vo-al", description=__doc__, formatter_class=_Help)
    parser.add_argument("--version", action="version", version=f"vo-al {__version__}")
    commands = parser.add_subparsers(dest="command", required=True,
                                     parser_class=functools.partial(argparse.ArgumentParser,
                                                                    formatter_class=_Help))

    p = commands.add_parser("inspect", help="describe spectrum files")
    p.add_argument("files", nargs="+", help="FITS files (LAMOST or Ondřejov layouts)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=_cmd_inspect)

    p = commands.add_parser("synth", help="write a synthetic survey in the real file layouts")
    p.add_argument("outdir", type=Path, help="folder to write")
    p.add_argument("--lamost", type=int, default=1000, help="LAMOST-layout files")
    p.add_argument("--ondrejov", type=int, default=0, help="Ondřejov CCD700 files")
    p.add_argument("--seed", type=int, default=0, help="seed of the generator")
    p.add_argument("--emission-fraction", type=float, default=0.003,
                   help="fraction of LAMOST spectra with Hα emission (real DR2: 0.003)")
    p.add_argument("--corrupt", type=int, default=0, help="broken files to add")
    p.add_argument("--workers", type=int, default=None,
                   help="processes (default: all cores)")
    p.add_argument("--pool", "--hdf5", action="store_true",
                   help="write OUTDIR/pool.h5 (LAMOST), OUTDIR/train.h5 (Ondřejov, labelled) "
                        "and truth.csv directly, as `vo-al ingest` would build them; no FITS")
    _add_preprocess_options(p, ", with --pool")
    p.add_argument("--shard-rows", type=int, default=4096,
                   help="with --pool: spectra per resumable shard")
    p.add_argument("--overwrite", action="store_true", help="with --pool: replace the pools")
    p.set_defaults(func=_cmd_synth)

    p = commands.add_parser("ingest", help="build an HDF5 pool from spectrum files")
    p.add_argument("inputs", nargs="+", help="files, directories or text files of paths")
    p.add_argument("--out", required=True, type=Path, help="pool file to write (.h5)")
    p.add_argument("--labels", type=Path, help="CSV with id or file, and label (or class)")
    p.add_argument("--workers", type=int, default=None, help="processes (default: all cores)")
    _add_preprocess_options(p)
    p.add_argument("--overwrite", action="store_true", help="replace a completed pool")
    p.add_argument("--shard-rows", type=int, default=4096,
                   help="files per shard: the most a kill can lose")
    _add_dask_options(p)
    p.set_defaults(func=_cmd_ingest)
    _add_fetch_command(commands)

    p = commands.add_parser(
        "demo", help="generate a demo survey, ingest it, run a few simulated iterations")
    p.add_argument("--dir", default="vo-al-demo",
                   help="folder of the survey, the session and the learning curves")
    p.add_argument("--lamost", type=int, default=10000, help="LAMOST-like pool spectra")
    p.add_argument("--ondrejov", type=int, default=1500,
                   help="labelled Ondřejov-like training spectra")
    p.add_argument("--emission-fraction", type=float, default=0.03,
                   help="share of interesting pool spectra (ten times the real 0.003, so a "
                        "small demo has something to find)")
    p.add_argument("--iterations", type=int, default=8, help="simulated iterations")
    p.add_argument("--no-baseline", action="store_true",
                   help="skip the random-query twin that the strategy is compared with "
                        "(half the time)")
    p.add_argument("--query-size", type=int, default=50, help="queries per iteration")
    p.add_argument("--estimate-size", type=int, default=10,
                   help="estimate sample per iteration (small: a small pool's interesting "
                        "spectra must not all go to estimate samples, which are never trained "
                        "on; the paper: 30 of 4.1 million)")
    p.add_argument("--answer-weight", type=float, default=20.0,
                   help="weight of each oracle answer in training, against 1 for a "
                        "training-set spectrum (the paper: 1)")
    p.add_argument("--max-epochs", type=int, default=6, help="most training epochs")
    p.add_argument("--no-gui", action="store_true",
                   help="do not open the desktop app at the end (it opens when DISPLAY is set)")
    p.add_argument("--seed", type=int, default=1, help="seed of the survey and the loop")
    p.add_argument("--workers", type=int, default=None,
                   help="processes generating the survey (default: all cores)")
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
    from .catalogues import CrossmatchError
    from .train import CheckpointError

    return (CrossmatchError, SessionError, LabelFileError, LabelLogError, InputsChangedError, NoSpectraError,
            SpectrumReadError, CheckpointError, OSError) + _cluster_errors()


def _cluster_errors() -> tuple[type[BaseException], ...]:
    """:class:`vo_al.distributed.ClusterError`, where dask is installed."""
    try:
        from .distributed import ClusterError
    except ImportError:  # no dask: no cluster, no cluster error
        return ()
    return (ClusterError,)


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
