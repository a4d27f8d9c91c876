"""Pieces shared by the SavedModel and TFLite exporters: output order, padding, checks."""

from __future__ import annotations

import numpy as np

from panns_keras.artifact import CLIPWISE, EMBEDDING, FRAMEWISE
from panns_keras.data.formats import to_labels
from panns_keras.errors import UserError


class ExportVerificationError(UserError):
    """A re-loaded export disagrees with the Keras model beyond its tolerance."""


def output_keys(model) -> tuple[str, ...]:
    """The exported outputs, in a fixed order: scores first, then embedding / framewise."""
    keys = [CLIPWISE]
    if model.spec.head.kind == "clip":
        keys.append(EMBEDDING)
    else:
        keys.append(FRAMEWISE)
    return tuple(keys)


def label_names(model, labels=None) -> list[str]:
    """Display names from ``labels`` (Labels, (mid, name) pairs or names) or ``model.labels``."""
    if labels is None:
        labels = getattr(model, "labels", None)
    if labels is None:
        return [f"class_{i}" for i in range(model.spec.num_classes)]
    names = [label.display_name for label in to_labels(labels)]
    if len(names) != model.spec.num_classes:
        raise UserError(
            f"labels: {len(names)} labels for a model with {model.spec.num_classes} classes"
        )
    return names


def synthetic_windows(sample_rate: int, length: int, count: int = 3, seed: int = 0):
    """Deterministic test signals (tones + noise bursts) used when no real audio is given."""
    rng = np.random.default_rng(seed)
    t = np.arange(length) / sample_rate
    out = []
    for i in range(count):
        f0 = 220.0 * (i + 1)
        x = 0.3 * np.sin(2 * np.pi * f0 * t) * (1 + np.sin(2 * np.pi * 0.5 * t))
        x += 0.05 * rng.standard_normal(length) * (t % 1.0 < 0.3)
        out.append(x.astype(np.float32))
    return np.stack(out)


VERIFY_BATCH = 2  # windows per call in the post-export checks (see batched)


def batched(fn, x: np.ndarray, batch: int = VERIFY_BATCH) -> dict[str, np.ndarray]:
    """``fn(x)`` (a dict of arrays) computed ``batch`` rows at a time and concatenated.

    The post-export checks run Keras and the exported model on the verification windows a
    few at a time: Cnn14 on 16 windows of 10 s in one call holds ~2 GB of activations,
    which set the export's peak memory (ONNX through the CLI: 5.4 GB).
    """
    outs = [
        {k: np.asarray(v) for k, v in fn(x[i : i + batch]).items()} for i in range(0, len(x), batch)
    ]
    return {k: np.concatenate([o[k] for o in outs]) for k in outs[0]}


def compare_scores(ref: np.ndarray, got: np.ndarray, top_k: int = 5) -> dict:
    """Max / mean |diff| and top-k agreement (mean overlap fraction) of score arrays (N, K)."""
    ref = np.asarray(ref, np.float64).reshape(-1, ref.shape[-1])
    got = np.asarray(got, np.float64).reshape(-1, got.shape[-1])
    diff = np.abs(ref - got)
    k = min(top_k, ref.shape[-1])
    overlap = [len(set(np.argsort(-r)[:k]) & set(np.argsort(-g)[:k])) / k for r, g in zip(ref, got)]
    top1 = float(np.mean(np.argmax(ref, -1) == np.argmax(got, -1)))
    return {
        "max_abs": float(diff.max()) if np.all(np.isfinite(got)) else float("inf"),
        "mean_abs": float(diff.mean()) if np.all(np.isfinite(got)) else float("inf"),
        f"top{k}_agreement": float(np.mean(overlap)),
        "top1_agreement": top1,
    }


# A float export's max |score diff| may be this many times the model's own float32 noise on
# the same input (float32 against float64, :func:`float32_noise`): two float32
# implementations of one graph (TensorFlow, TFLite's XNNPACK, onnxruntime, on AVX2 or
# AVX-512) each sit about one noise away from the float64 answer, and differ in the max
# over every class and window by a few times that; a wrong export (a weight, an op, an
# output order) is off by orders of magnitude more.
NOISE_FACTOR = 50.0


def float32_noise(model, inputs: np.ndarray) -> float:
    """max |clipwise_output| difference of ``model`` run in float32 and in float64 on
    ``inputs``: the model's own float32 rounding noise on that input, which sets the
    tolerance of the float exports' checks (:func:`scaled_tolerance`).

    The float64 copy has the same weights; its front end (log-mel, computed in float32 by
    design) and bn0 stay float32, so the figure is the backbone's and head's noise.
    """
    import keras

    from panns_keras.models.tagger import AudioTagger

    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("float64")
    try:
        twin = AudioTagger.from_config(model.get_config())
    finally:
        keras.config.set_dtype_policy(previous)
    for mine, theirs in zip(twin.weights, model.weights):
        mine.assign(np.asarray(theirs).astype(mine.dtype))
    x = np.asarray(inputs, np.float32)
    ref = batched(lambda v: model(v, training=False), x)[CLIPWISE]
    wide = batched(lambda v: twin(v, training=False), x)[CLIPWISE]
    return float(np.max(np.abs(np.asarray(ref, np.float64) - np.asarray(wide, np.float64))))


def scaled_tolerance(base: float, noise: float | None) -> float:
    """``base``, widened to :data:`NOISE_FACTOR` times the model's float32 noise when that is
    larger: a correct export passes on any CPU, a wrong one still fails."""
    return base if noise is None else max(base, NOISE_FACTOR * float(noise))


class FloatCheck:
    """The check of a float export against the Keras model on ``inputs``: within ``base``
    (max |diff| of the scores; other outputs ``base`` times their magnitude), widened to
    :data:`NOISE_FACTOR` times the model's own float32 noise on those inputs
    (:func:`float32_noise`, measured only when ``base`` is exceeded) when that is larger.
    """

    def __init__(self, name: str, model, inputs: np.ndarray, base: float):
        self.name, self.model, self.inputs, self.base = name, model, inputs, float(base)
        self.noise: float | None = None

    def _widen(self) -> float:
        if self.noise is None:
            self.noise = float32_noise(self.model, self.inputs)
        return scaled_tolerance(self.base, self.noise)

    def scores(self, stats: dict) -> dict:
        """Raises unless ``stats`` (:func:`compare_scores`) is within the tolerance; records
        ``tolerance`` (and ``float32_noise`` when measured) in ``stats``."""
        tol = self.base
        if np.isfinite(stats["max_abs"]) and stats["max_abs"] > tol:  # non-finite: fails
            tol = self._widen()
            stats["float32_noise"] = self.noise
        stats["tolerance"] = tol
        check(self.name, stats, tol, None)
        return stats

    def output(self, key: str, ref: np.ndarray, got: np.ndarray) -> None:
        """Raises unless ``got`` matches ``ref`` within the tolerance times its magnitude."""
        scale = max(1.0, float(np.abs(ref).max()))
        if ref.shape != got.shape:
            raise ExportVerificationError(
                f"{self.name}: output {key} has shape {got.shape}, Keras {ref.shape}"
            )
        err = float(np.max(np.abs(np.asarray(got, np.float64) - ref)))
        if err <= self.base * scale:
            return
        if not np.isfinite(err) or err > self._widen() * scale:
            raise ExportVerificationError(
                f"{self.name}: output {key} differs from Keras (max |diff| {err:.3g})"
            )


def check(name: str, stats: dict, max_abs: float | None, mean_abs: float | None) -> None:
    """Raise :class:`ExportVerificationError` when ``stats`` exceed the tolerances."""
    bad = []
    if not np.isfinite(stats["max_abs"]):
        bad.append("non-finite outputs")
    if max_abs is not None and stats["max_abs"] > max_abs:
        bad.append(f"max |diff| {stats['max_abs']:.3g} > {max_abs:g}")
    if mean_abs is not None and stats["mean_abs"] > mean_abs:
        bad.append(f"mean |diff| {stats['mean_abs']:.3g} > {mean_abs:g}")
    if bad:
        raise ExportVerificationError(
            f"{name}: re-loaded export differs from Keras: " + "; ".join(bad)
        )
