"""The settings of a session, of an iteration, of a scoring run, of the
preprocessing and of the VO clients.

Plain dataclasses without heavy imports: every door reads its defaults
from here (the CLI builds its options from them without loading torch,
scipy, astropy or pyvo). :mod:`vo_al.session`, :mod:`vo_al.loop`,
:mod:`vo_al.scoring`, :mod:`vo_al.preprocess`, :mod:`vo_al.tapmatch` and
:mod:`vo_al.ssa` use them.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields

import numpy as np

__all__ = ["CONFIG_VERSION", "SessionConfig", "DEFAULT_MC_SAMPLES", "IterationOptions",
           "PRECISIONS", "ScoreConfig", "PREPROCESS_VERSION", "BLUR_MODES", "PreprocessConfig",
           "TapOptions", "FetchOptions", "KEY_COLUMNS"]

#: Version of ``config.json``; bumped with every incompatible change.
CONFIG_VERSION = 1


@dataclass
class SessionConfig:
    """The settings of a session, stored as ``config.json``.

    Parameters
    ----------
    train_path, pool_path : str
        Absolute paths of the training pool (with labels) and of the pool.
    class_names : list of str
        The loop's classes; index 0 is "not interesting".
    aliases : dict
        Other names accepted for a class, e.g. training labels named
        ``absorption`` count as ``other``.
    skip_name : str
        The answer "unsure": recorded, never trained on.
    strategy : str
        The query strategy's name.
    query_size : int
        Spectra queried per iteration.
    estimate_size : int
        Random spectra predicted as interesting, labelled to estimate the
        precision and never trained on.
    interesting : list of str, optional
        Classes searched for; default all but the first.
    seed : int
        Seed for training and sampling.
    preprocess : dict
        The pool's preprocessing settings (``PoolReader.preprocess_attrs``).
    train_relative, pool_relative : str
        The same paths relative to the session directory, written by the
        session: used when an absolute path is gone because the session
        moved together with its survey (a project folder moved or copied).
    version : int
        :data:`CONFIG_VERSION`.
    """

    train_path: str
    pool_path: str
    class_names: list = field(default_factory=lambda: ["other", "emission", "double-peak"])
    aliases: dict = field(default_factory=lambda: {"absorption": "other"})
    skip_name: str = "skip"
    strategy: str = "entropy"
    query_size: int = 100
    estimate_size: int = 30
    interesting: list | None = None
    seed: int = 0
    preprocess: dict = field(default_factory=dict)
    train_relative: str = ""
    pool_relative: str = ""
    version: int = CONFIG_VERSION

    def __post_init__(self):
        if self.interesting is None:
            self.interesting = list(self.class_names[1:])
        names = [*self.class_names, *self.aliases, self.skip_name]
        folded = [n.casefold() for n in names]
        if len(self.class_names) < 2 or len(set(folded)) != len(folded) or not all(names):
            raise ValueError(
                f"class names, aliases and the skip name must be at least two classes and "
                f"distinct non-empty names (case-insensitively): {names}")
        unknown = [n for n in [*self.aliases.values(), *self.interesting]
                   if n not in self.class_names]
        if unknown:
            raise ValueError(f"aliases and interesting classes name unknown classes: {unknown}")
        if self.query_size < 1 or self.estimate_size < 0:
            raise ValueError("query_size must be >= 1 and estimate_size >= 0")

    def canonical(self, name: str) -> str:
        """A class name, alias or the skip name (any case) → the class or skip name.

        Raises
        ------
        KeyError
            For any other name.
        """
        names = {n.casefold(): n for n in [*self.class_names, self.skip_name]}
        names.update({a.casefold(): c for a, c in self.aliases.items()})
        return names[str(name).strip().casefold()]

    def class_index(self, name: str) -> int:
        """Index of a class given by its name or an alias.

        Raises
        ------
        KeyError
            For an unknown name or the skip name.
        """
        canonical = self.canonical(name)
        if canonical == self.skip_name:
            raise KeyError(name)
        return self.class_names.index(canonical)

    @property
    def interesting_indices(self) -> list[int]:
        """Indices of the interesting classes."""
        return [self.class_names.index(n) for n in self.interesting]

    def to_json(self) -> str:
        """The config as JSON text."""
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str) -> "SessionConfig":
        """Read :meth:`to_json` output.

        Raises
        ------
        ValueError
            For a newer version, unknown or missing keys, or invalid values.
        """
        values = json.loads(text)
        version = values.get("version")
        if not isinstance(version, int) or version > CONFIG_VERSION:
            raise ValueError(f"session config version {version!r}; this vo-al reads up to "
                             f"{CONFIG_VERSION}")
        unknown = set(values) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"unknown session config keys: {sorted(unknown)}")
        try:
            return cls(**values)
        except TypeError as exc:
            raise ValueError(f"invalid session config: {exc}") from None


PRECISIONS = ("auto", "fp32", "bf16")


@dataclass(frozen=True)
class ScoreConfig:
    """How to score a pool.

    Parameters
    ----------
    batch_size : int
        Spectra per forward pass.
    chunk_rows : int
        Pool rows read from disk at a time (memory is bounded by this).
    mc_samples : int
        T dropout samples of the head per spectrum; 0 for deterministic
        probabilities only.
    precision : {'auto', 'fp32', 'bf16'}
        ``'auto'`` uses bf16 autocast where the hardware has bf16 units *and*
        its class decisions agree with fp32 on at least
        ``agreement_threshold`` of the first ``check_rows`` usable spectra.
    agreement_threshold : float
        Required fp32/bf16 agreement of the argmax class.
    check_rows : int
        Spectra used for that check.
    seed : int
        Seed of the MC-dropout masks, and the only thing that fixes them: the
        same T thinned heads are used for the whole pool (so results do not
        depend on chunking), and the same seed gives the same masks and BALD
        values. Callers that score again and again, such as the
        active-learning loop, pass a new seed each time (e.g. the session
        seed plus the iteration number) so that every iteration draws new
        masks.
    device : str
        ``'auto'`` (CUDA when present), ``'cpu'`` or ``'cuda'``.
    """

    batch_size: int = 1024
    chunk_rows: int = 16384
    mc_samples: int = 0
    precision: str = "auto"
    agreement_threshold: float = 0.999
    check_rows: int = 4096
    seed: int = 0
    device: str = "auto"

    def __post_init__(self):
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, not {self.precision!r}")
        if self.batch_size < 1 or self.chunk_rows < 1 or self.mc_samples < 0:
            raise ValueError("batch_size and chunk_rows must be >= 1, mc_samples >= 0")


#: MC-dropout samples used when a strategy needs them (BALD).
DEFAULT_MC_SAMPLES = 20


@dataclass(frozen=True)
class IterationOptions:
    """Choices for one iteration; None takes the session's configuration.

    Parameters
    ----------
    strategy : str, optional
        A name in :data:`vo_al.strategies.STRATEGIES`.
    query_size, estimate_size : int, optional
    mode : {'scratch', 'warm', 'head'}
        Retrain from scratch (the paper), start from the previous
        iteration's weights, or fine-tune only the dense head.
    max_epochs : int
    patience : int
        Epochs without a better validation loss before training stops.
    diversity : {None, 'kmeans++', 'coreset'}
        Spread the query batch out in the network's penultimate feature
        space: the ``10 × query_size`` most useful spectra are candidates,
        of which ``query_size`` are picked by k-means++ seeding or greedy
        core-set (:func:`vo_al.strategies.select_diverse`).
    cache_features : bool
        Keep the trunk's features of every pool spectrum in
        ``SESSION/features.h5`` (1 KB per spectrum, float16), so that a later
        head-only iteration rescores the pool by running the dense head only.
        Head-only iterations always use (and refresh) the cache.
    mc_samples : int, optional
        MC-dropout samples for scoring; default 20 for BALD, else 0. Each
        iteration draws new dropout masks (seed + iteration).
    paper : bool
        Train with the paper's settings exactly
        (:func:`vo_al.train.paper_config`: from scratch, SMOTE, early
        stopping on the training loss with patience 10 and min_delta 1e-3);
        ``mode``, ``max_epochs`` and ``patience`` are then ignored.
    answer_weight : float
        Weight of each oracle answer in the training loss (1, the paper: an
        answer weighs as much as one training spectrum).
        The answers are few beside the training set and come from the
        pool's own domain; a larger weight lets them move the model sooner.
    model : str, optional
        A checkpoint to use for this iteration instead of training one (a
        model trained elsewhere, or the same first model shared by several
        sessions on one survey); it must match the session's preprocessing
        and classes.
    score : ScoreConfig
        Batch sizes, precision and device of scoring (``mc_samples`` is
        taken from above).
    """

    strategy: str | None = None
    query_size: int | None = None
    estimate_size: int | None = None
    mode: str = "scratch"
    max_epochs: int = 50
    patience: int = 10
    diversity: str | None = None
    cache_features: bool = False
    mc_samples: int | None = None
    paper: bool = False
    answer_weight: float = 1.0
    model: str | None = None
    score: ScoreConfig = ScoreConfig()


#: Bumped whenever a change to :mod:`vo_al.preprocess` (or to the bad-pixel rule of the
#: readers it relies on) changes the vectors it produces. 2: LAMOST or-masked
#: pixels with ivar = 0 are bad; a window without ivar > 0 is ALL_BAD.
PREPROCESS_VERSION = 2

#: Accepted values of :attr:`PreprocessConfig.blur`.
BLUR_MODES = ("resolution", "fixed", "none")

@dataclass(frozen=True)
class PreprocessConfig:
    """Parameters of :func:`preprocess`; stored with pools and checkpoints.

    Parameters
    ----------
    wave_min, wave_max : float
        Window edges in Å, in the working medium (vacuum by default).
    n_points : int
        Length of the output vector.
    target_resolving_power : float
        Resolving power everything is degraded to (LAMOST low-res: 1800).
    blur : {'resolution', 'fixed', 'none'}
        ``'resolution'``: Gaussian σ from the source and target resolving
        powers (see :func:`blur_sigma_angstrom`). ``'fixed'``: the paper's
        Gaussian of ``fixed_blur_pixels`` native pixels, only for spectra
        whose resolving power is above the target. ``'none'``: no blur.
    fixed_blur_pixels : float
        σ in native pixels for ``blur='fixed'``.
    vacuum : bool
        Work in vacuum wavelengths (air spectra are converted); when False,
        work in air (vacuum spectra are converted).
    max_bad_fraction : float
        Largest fraction of bad pixels inside the window that is still
        interpolated over; above it the spectrum is ``TOO_MANY_BAD``.
    """

    wave_min: float = 6519.0
    wave_max: float = 6732.0
    n_points: int = 140
    target_resolving_power: float = 1800.0
    blur: str = "resolution"
    fixed_blur_pixels: float = 7.0
    vacuum: bool = True
    max_bad_fraction: float = 0.5

    def __post_init__(self):
        if not self.wave_max > self.wave_min > 0:
            raise ValueError(f"need 0 < wave_min < wave_max, got {self.wave_min}, {self.wave_max}")
        if self.n_points < 2:
            raise ValueError(f"n_points must be at least 2, got {self.n_points}")
        if self.blur not in BLUR_MODES:
            raise ValueError(f"blur must be one of {BLUR_MODES}, not {self.blur!r}")
        if not self.target_resolving_power > 0 or not self.fixed_blur_pixels >= 0:
            raise ValueError("target_resolving_power must be > 0 and fixed_blur_pixels >= 0")
        if not 0.0 <= self.max_bad_fraction <= 1.0:
            raise ValueError(f"max_bad_fraction must be in [0, 1], got {self.max_bad_fraction}")

    @property
    def step(self) -> float:
        """Spacing of the output grid in Å."""
        return (self.wave_max - self.wave_min) / (self.n_points - 1)

    @property
    def centre(self) -> float:
        """Window centre in Å, where blur widths are computed."""
        return 0.5 * (self.wave_min + self.wave_max)

    def grid(self) -> np.ndarray:
        """The output wavelength grid, ``linspace(wave_min, wave_max, n_points)``."""
        return np.linspace(self.wave_min, self.wave_max, self.n_points)

    def to_attrs(self) -> dict:
        """Flat dict of str/float/int values for HDF5 attrs and checkpoints.

        ``vacuum`` is stored as 0/1; ``preprocess_version`` records
        :data:`PREPROCESS_VERSION` (ignored by :meth:`from_attrs`, compared by
        whoever needs pools and models to match).
        """
        attrs = {k: int(v) if isinstance(v, bool) else v for k, v in asdict(self).items()}
        attrs["preprocess_version"] = PREPROCESS_VERSION
        return attrs

    @classmethod
    def from_attrs(cls, attrs) -> "PreprocessConfig":
        """Rebuild a config from :meth:`to_attrs` output (extra keys are ignored).

        Accepts the numpy scalars and bytes that h5py returns.

        Raises
        ------
        KeyError
            When a field is missing: a silent default could mismatch a pool.
        """
        values = {}
        for f in fields(cls):
            value = attrs[f.name]
            if isinstance(value, bytes):
                value = value.decode()
            if isinstance(value, np.generic):
                value = value.item()
            values[f.name] = {"float": float, "int": int, "str": str, "bool": bool}[f.type](value)
        return cls(**values)


@dataclass(frozen=True)
class TapOptions:
    """How to talk to a TAP service.

    Attributes
    ----------
    chunk_rows : int
        Candidates uploaded per query (public services cap uploads).
    mode : {'auto', 'sync', 'async'}
        ``auto``: one synchronous query when all candidates fit in one
        chunk, else an async job per chunk.
    maxrec : int
        Most result rows asked for per query; a result that overflows it
        is split in two.
    tries : int
        Attempts of each query before a transient failure is an error.
    backoff_s : float
        Wait before the second try; doubled for each further one.
    timeout_s : float
        Most seconds without an answer (sync) or for a job to finish (async).
    """

    chunk_rows: int = 10_000
    mode: str = "auto"
    maxrec: int = 100_000
    tries: int = 4
    backoff_s: float = 2.0
    timeout_s: float = 300.0


@dataclass(frozen=True)
class FetchOptions:
    """How to talk to an SSA service and its file server.

    Attributes
    ----------
    workers : int
        Downloads at a time.
    tries : int
        Attempts of each request before a transient failure is an error.
    backoff_s : float
        Wait before the second try; doubled for each further one.
    timeout_s : float
        Most seconds without an answer.
    maxrec : int
        Most records asked for per query; a query with more is an error
        (narrow the search).
    """

    workers: int = 4
    tries: int = 4
    backoff_s: float = 2.0
    timeout_s: float = 120.0
    maxrec: int = 100_000


#: Columns tried, in order, for the record a row of ``vo-al fetch --labels-from`` names.
KEY_COLUMNS = ("did", "obs_publisher_did", "ssa_pubdid", "pubdid", "publisher_did",
               "obs_id", "id", "file", "title")
