"""The public ``tag``, ``detect_events`` and ``embed``: a model and audio in, results out.

Re-exported by :mod:`panns_keras.api` (``panns_keras.tag`` ...).
"""

from __future__ import annotations


def _run(verb: str, model, audio, sample_rate, **kwargs):
    # imported here: ``import panns_keras`` loads this module, not audio decoding / runtime
    from panns_keras.inference import events
    from panns_keras.inference.engine import InferenceEngine, as_sources, embed_files, tag_files

    engine_kw = {k: kwargs.pop(k) for k in ("window_seconds", "hop_seconds", "batch_size")}
    engine = InferenceEngine(model, keep_framewise=verb == "events", **engine_kw)
    if verb == "events" and engine_kw["hop_seconds"] is None:
        engine.use_sed_hop()
    sources, single = as_sources(audio, sample_rate, engine.sample_rate)
    if verb == "events":
        results = [r for r, _ in events.detect_events(None, sources, engine=engine, **kwargs)]
    elif verb == "embed":
        results = embed_files(None, sources, engine=engine)
    else:
        results = tag_files(None, sources, engine=engine)
    return results[0] if single else results


def tag(
    model,
    audio,
    sample_rate: int | None = None,
    *,
    hop_seconds: float | None = None,
    window_seconds: float | None = None,
    batch_size: int = 8,
):
    """Clip-level tags of ``audio`` with ``model``.

    Args:
        model: a model directory, ``.keras`` file, SavedModel directory, ``.tflite`` file,
            or a loaded model (see :mod:`panns_keras.runtime`).
        audio: a file path, a NumPy waveform (1-D; 2-D = one clip per row) or a list of
            those. Arrays are at ``sample_rate`` (default: the model's) and resampled.
        hop_seconds: start of one window to the next (default: the window, no overlap).
        window_seconds: analysis window; default: the length of the clips the model was
            trained on (10 s when unknown; a ``.tflite`` model fixes its own). Shorter
            input is zero-padded to that length, as in training.

    Returns:
        A :class:`panns_keras.inference.FileResult` (a list for several inputs):
        ``.clipwise`` (K,) scores (max over windows), ``.top(k)`` -> ``[(label, score)]``,
        ``.window_clipwise`` / ``.window_starts`` per window, ``.labels``, ``.error``.
    """
    return _run(
        "tag",
        model,
        audio,
        sample_rate,
        hop_seconds=hop_seconds,
        window_seconds=window_seconds,
        batch_size=batch_size,
    )


def detect_events(
    model,
    audio,
    sample_rate: int | None = None,
    *,
    threshold: float = 0.5,
    hop_seconds: float | None = None,
    median_filter=None,
    min_duration: float = 0.0,
    min_gap: float = 0.0,
    window_seconds: float | None = None,
    batch_size: int = 8,
):
    """Sound events in ``audio`` (arguments as :func:`tag`).

    Returns results whose ``.events`` are DCASE dicts (``onset``, ``offset`` in seconds,
    ``event_label``, ``score``) and ``.frame_scores`` (T, K) the scores they came from, one
    row per ``.frame_scores_hop`` seconds (model frames for decision-level models, the hop
    for clip models; their default hop is a quarter of the window). ``median_filter``: see
    :func:`panns_keras.inference.median.median_filter_sizes`.
    """
    return _run(
        "events",
        model,
        audio,
        sample_rate,
        hop_seconds=hop_seconds,
        window_seconds=window_seconds,
        batch_size=batch_size,
        threshold=threshold,
        median_filter=median_filter,
        min_duration=min_duration,
        min_gap=min_gap,
    )


def embed(
    model,
    audio,
    sample_rate: int | None = None,
    *,
    hop_seconds: float | None = None,
    window_seconds: float | None = None,
    batch_size: int = 8,
):
    """Clip embeddings of ``audio`` (arguments as :func:`tag`; clip-level models only).

    Returns results with ``.embedding`` (E,) (window-length-weighted mean over windows) and
    ``.window_embeddings`` (W, E).
    """
    return _run(
        "embed",
        model,
        audio,
        sample_rate,
        hop_seconds=hop_seconds,
        window_seconds=window_seconds,
        batch_size=batch_size,
    )
