"""The ``vo-al`` command line: one sub-command per task, each a thin call
into the library."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from . import __version__

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

    bar = _Progress("synth", "file")
    try:
        report = generate_survey(
            args.outdir, n_lamost=args.lamost, n_ondrejov=args.ondrejov, seed=args.seed,
            emission_fraction=args.emission_fraction, corrupt=args.corrupt,
            workers=args.workers, progress=bar,
        )
    finally:
        bar.close()
    print(f"wrote {report.n_files} files to {args.outdir} in {report.seconds:.1f} s "
          f"({report.files_per_second:.0f} files/s); classes: {report.class_counts}; "
          f"corrupt: {report.n_corrupt}")
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
    """Generate a demo survey, ingest it, and summarise the pool."""
    from .pool import PoolReader

    out = Path(args.dir)
    survey = out / "survey"
    if not (survey / "truth.csv").exists():
        status = _cmd_synth(argparse.Namespace(
            outdir=survey, lamost=args.lamost, ondrejov=args.ondrejov, seed=args.seed,
            emission_fraction=0.003, corrupt=3, workers=args.workers))
        if status:
            return status
    for name, inputs, labels in (("train.h5", [survey / "ondrejov"], survey / "truth.csv"),
                                 ("pool.h5", [survey / "lamost"], None)):
        status = _cmd_ingest(argparse.Namespace(
            inputs=inputs, out=out / name, labels=labels, workers=args.workers,
            wave_min=6519.0, wave_max=6732.0, points=140, blur="resolution", overwrite=True,
            shard_rows=4096))
        if status:
            return status
    with PoolReader(out / "pool.h5") as pool:
        print(f"demo pool ready: {len(pool)} spectra of {pool.length} points in {out / 'pool.h5'}; "
              f"training set in {out / 'train.h5'}")
    return 0


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

    p = commands.add_parser("demo", help="generate a demo survey, ingest it, summarise")
    p.add_argument("--dir", default="vo-al-demo")
    p.add_argument("--lamost", type=int, default=3000)
    p.add_argument("--ondrejov", type=int, default=600)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--workers", type=int, default=None)
    p.set_defaults(func=_cmd_demo)
    return parser


def main(argv=None) -> int:
    """Entry point of the ``vo-al`` console script."""
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
