"""Classifying a spectrum a peer sent: the project's readers, the session's
preprocessing, and the model of the latest completed iteration."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..preprocess import PreprocessConfig, Quality, preprocess
from ..session import Session
from ..spectra import Spectrum
from .messages import number

__all__ = ["Classification", "Classifier"]


@dataclass(frozen=True)
class Classification:
    """The model's view of one spectrum from outside the pool.

    Attributes
    ----------
    spectrum : Spectrum
        As read (``source`` is the URL it came from).
    vector : ndarray
        The preprocessed window (zeros when unusable).
    quality : Quality
    reason : str
        Why it is unusable, ``''`` when usable.
    iteration : int
        The iteration whose model classified it; 0 when there is none yet.
    probabilities : dict
        ``class name -> probability``; empty when not classified.
    """

    spectrum: Spectrum
    vector: np.ndarray
    quality: Quality
    reason: str
    iteration: int
    probabilities: dict

    @property
    def predicted(self) -> str:
        """The most probable class, ``''`` when not classified."""
        if not self.probabilities:
            return ""
        return max(self.probabilities, key=self.probabilities.get)

    @property
    def problem(self) -> str:
        """Why there is no classification, ``''`` when there is one."""
        if self.quality != Quality.OK:
            return f"the spectrum is unusable: {self.reason}"
        if not self.probabilities:
            return "no trained model yet: run an iteration first"
        return ""

    def as_samp(self) -> dict:
        """The result map of the reply (strings only)."""
        result = {"spectrum-id": self.spectrum.id, "quality": self.quality.name,
                  "iteration": str(self.iteration), "predicted": self.predicted}
        result.update({f"p_{name}": number(p) for name, p in self.probabilities.items()})
        return result


class Classifier:
    """Classifies spectra with the session's latest model, loaded once per iteration.

    Parameters
    ----------
    session : Session
    """

    def __init__(self, session: Session):
        self._session = session
        self._config = PreprocessConfig.from_attrs(session.config.preprocess)
        self._loaded: tuple[int, object] | None = None

    def _model(self, n: int):
        if self._loaded is None or self._loaded[0] != n:
            from ..train import load_checkpoint  # torch only once a spectrum needs it

            checkpoint = load_checkpoint(self._session.iteration_file(n, "checkpoint"),
                                         expected_preprocess_attrs=self._session.config.preprocess)
            self._loaded = (n, checkpoint.model)
        return self._loaded[1]

    def classify(self, spectrum: Spectrum) -> Classification:
        """Preprocess ``spectrum`` like the pool and, if usable, classify it."""
        done = preprocess(spectrum, self._config)
        n = self._session.iteration
        probabilities = {}
        if done.ok and n > 0:
            import torch

            with torch.inference_mode():
                probs = self._model(n).predict_proba(torch.from_numpy(done.vector[None]))
            names = self._session.config.class_names
            probabilities = {name: float(p) for name, p in zip(names, probs[0].tolist())}
        return Classification(spectrum, done.vector, done.quality, done.reason, n, probabilities)
