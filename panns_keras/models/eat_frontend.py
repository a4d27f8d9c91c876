"""EfficientAT's front end as a Keras layer (``keras.ops`` only, TFLite-safe).

The reference (``models/preprocess.AugmentMelSTFT``, Schmid et al.) computes, from a
waveform ``(B, L)``:

1. pre-emphasis: a valid convolution with ``[-0.97, 1]``, ``y[n] = x[n + 1] - 0.97 x[n]``
   (one sample shorter);
2. ``torch.stft(n_fft, hop, win_length, center=True)``: reflect padding of ``n_fft // 2``
   on both sides, a symmetric Hann window of ``win_length`` samples centred in the
   ``n_fft``-sample frame (zeros around it);
3. power ``re² + im²``;
4. Kaldi mel banks (``torchaudio.compliance.kaldi.get_mel_banks``: triangles on the
   ``1127 ln(1 + f / 700)`` scale, peak 1, no area normalisation) over the first
   ``n_fft // 2`` bins, plus a zero column for the Nyquist bin;
5. ``log(mel + 1e-5)``, then ``(x + 4.5) / 5``.

Here the STFT is framing by reshapes plus one matmul with fixed DFT kernels, as in
:class:`panns_keras.models.layers.LogMelSpectrogram`: only the ``win_length`` non-zero
samples of each frame are multiplied (the window's zeros skipped), so TFLite needs no FFT
or Flex op. Output layout ``(B, T, mel_bins)`` (time first, like the PANNs front end; the
reference's tensor is ``(B, mel, T)``), ``T = 1 + (L - 1) // hop``.
"""

from __future__ import annotations

import math

import keras
import numpy as np
from keras import ops

from panns_keras.models.kernels import tensorflow_kernels

PREEMPHASIS = 0.97
LOG_OFFSET = 1e-5
NORM_SHIFT, NORM_SCALE = 4.5, 5.0


def symmetric_hann(n: int) -> np.ndarray:
    """``torch.hann_window(n, periodic=False)`` in float64."""
    if n == 1:
        return np.ones(1)
    return 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n) / (n - 1))


def centred_dft_kernels(n_fft: int, win_length: int) -> np.ndarray:
    """``(win_length, 2 * (n_fft // 2 + 1))`` float32: real then imaginary DFT bases of the
    window's non-zero span, sample ``n`` of the span being sample ``n + (n_fft - win) // 2``
    of the frame (where ``torch.stft`` puts a shorter window)."""
    offset = (n_fft - win_length) // 2
    n = np.arange(win_length)[:, None] + offset
    k = np.arange(n_fft // 2 + 1)[None, :]
    phase = 2.0 * np.pi * ((n * k) % n_fft) / n_fft  # exact modulo keeps the phase small
    w = symmetric_hann(win_length)[:, None]
    return np.concatenate([np.cos(phase) * w, -np.sin(phase) * w], axis=1).astype(np.float32)


def _kaldi_mel(f):
    return np.float32(1127.0) * np.log1p(f / np.float32(700.0))


def kaldi_mel_banks(
    mel_bins: int, n_fft: int, sample_rate: int, fmin: float, fmax: float
) -> np.ndarray:
    """``(n_fft // 2 + 1, mel_bins)`` float32: torchaudio's ``get_mel_banks(mel_bins, n_fft,
    sample_rate, fmin, fmax, 100, -500, 1.0)`` (no VTLN warp), transposed, with the zero row
    for the Nyquist bin that EfficientAT pads. Computed in float32 as torchaudio does.

    ``fmax <= 0`` counts from the Nyquist frequency, as in Kaldi.
    """
    nyquist = 0.5 * sample_rate
    if fmax <= 0.0:
        fmax += nyquist
    if not 0.0 <= fmin < fmax <= nyquist:
        raise ValueError(f"mel range {fmin}..{fmax} Hz must lie in 0..{nyquist} Hz")
    mel_low = 1127.0 * math.log(1.0 + fmin / 700.0)
    mel_high = 1127.0 * math.log(1.0 + fmax / 700.0)
    delta = (mel_high - mel_low) / (mel_bins + 1)
    b = np.arange(mel_bins, dtype=np.float32)[:, None]
    left = np.float32(mel_low) + b * np.float32(delta)
    centre = np.float32(mel_low) + (b + np.float32(1.0)) * np.float32(delta)
    right = np.float32(mel_low) + (b + np.float32(2.0)) * np.float32(delta)
    freqs = np.float32(sample_rate / n_fft) * np.arange(n_fft // 2, dtype=np.float32)
    mel = _kaldi_mel(freqs)[None, :]  # (1, n_fft / 2)
    up = (mel - left) / (centre - left)
    down = (right - mel) / (right - centre)
    banks = np.maximum(np.float32(0.0), np.minimum(up, down))  # (mel_bins, n_fft / 2)
    banks = np.pad(banks, [(0, 0), (0, 1)])  # the Nyquist bin gets no weight
    return np.ascontiguousarray(banks.T, dtype=np.float32)


def frame_signal(x, start: int, win: int, hop: int, frames_num):
    """Frames ``(B, frames_num, win)``, frame t = ``x[:, start + t * hop : ... + win]``.

    Reshapes and slices only (no strided convolution): the signal from ``start`` is cut into
    hop-size blocks and frame t is blocks ``t .. t + n - 1`` side by side (n = ceil(win /
    hop)), cut to ``win``; zeros are appended past the end.
    """
    n = -(-win // hop)
    blocks_num = frames_num + n - 1
    x = ops.pad(x[:, start:], [[0, 0], [0, n * hop]])
    blocks = ops.reshape(x[:, : blocks_num * hop], (-1, blocks_num, hop))
    shifted = [blocks[:, j : (j - n + 1) or None] for j in range(n)]
    frames = shifted[0] if n == 1 else ops.concatenate(shifted, axis=-1)
    return frames[..., :win]


@keras.saving.register_keras_serializable(package="panns_keras")
class EATLogMel(keras.layers.Layer):
    """Waveform ``(B, L)`` to EfficientAT's normalised log-mel ``(B, T, mel_bins)``.

    ``T = 1 + (L - 1) // hop_size`` (pre-emphasis takes one sample). In training, when
    ``freq_mask`` / ``time_mask`` are non-zero, one frequency band and one time span per
    example are set to 0 before the normalisation (torchaudio ``FrequencyMasking`` /
    ``TimeMasking`` with ``iid_masks=True``: width ``floor(u * mask)``, start
    ``floor(v * (size - u * mask))``, u and v uniform in [0, 1));
    identity at inference. Always float32.

    Example:
        >>> layer = EATLogMel()
        >>> layer(np.zeros((1, 32000), "float32")).shape
        TensorShape([1, 100, 128])
    """

    def __init__(
        self,
        sample_rate=32000,
        window_size=800,
        hop_size=320,
        mel_bins=128,
        fmin=0.0,
        fmax=15000.0,
        n_fft=1024,
        freq_mask=0,
        time_mask=0,
        seed=None,
        **kwargs,
    ):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        if window_size > n_fft:
            raise ValueError(f"window_size {window_size} exceeds n_fft {n_fft}")
        self.sample_rate, self.window_size, self.hop_size = sample_rate, window_size, hop_size
        self.mel_bins, self.fmin, self.fmax, self.n_fft = mel_bins, fmin, fmax, n_fft
        self.freq_mask, self.time_mask, self.seed = freq_mask, time_mask, seed
        self.dft_kernel = centred_dft_kernels(n_fft, window_size)  # (win, 2 * bins) numpy
        self.mel_matrix = kaldi_mel_banks(mel_bins, n_fft, sample_rate, fmin, fmax)
        self.seed_generator = keras.random.SeedGenerator(seed) if freq_mask or time_mask else None

    def _dft(self, frames):
        """``frames @ kernel`` (B, T, 2 * bins); off TensorFlow summed in 8 partial sums (as
        :class:`~panns_keras.models.layers.LogMelSpectrogram` does, for XLA's CPU dot)."""
        kernel = ops.convert_to_tensor(self.dft_kernel)
        blocks = 8
        if tensorflow_kernels() or self.window_size % blocks:
            return ops.matmul(frames, kernel)
        part = self.window_size // blocks
        f = ops.reshape(frames, (-1, ops.shape(frames)[1], blocks, part))  # (B, T, 8, w/8)
        k = ops.reshape(kernel, (blocks, part, -1))  # (8, w/8, 2 * bins)
        return ops.sum(ops.einsum("btkc,kcn->btkn", f, k), axis=2)

    def _mask(self, x, axis: int, width: int):
        """torchaudio's iid mask along ``axis`` (1 time, 2 frequency) of ``(B, T, F)``."""
        size = ops.shape(x)[axis]
        batch = ops.shape(x)[0]
        value = keras.random.uniform((batch,), seed=self.seed_generator) * width
        low = keras.random.uniform((batch,), seed=self.seed_generator) * (
            ops.cast(size, "float32") - value
        )
        start = ops.floor(low)
        end = start + ops.floor(value)
        idx = ops.cast(ops.arange(size), "float32")[None, :]
        inside = (idx >= start[:, None]) & (idx < end[:, None])  # (B, size)
        inside = inside[:, :, None] if axis == 1 else inside[:, None, :]
        return ops.where(inside, ops.zeros_like(x), x)

    def call(self, waveform, training=None):
        x = ops.cast(waveform, "float32")
        x = x[:, 1:] - np.float32(PREEMPHASIS) * x[:, :-1]  # (B, L - 1)
        length = ops.shape(x)[1]
        pad = self.n_fft // 2
        x = ops.pad(x, [[0, 0], [pad, pad]], mode="reflect")
        frames_num = 1 + length // self.hop_size
        start = (self.n_fft - self.window_size) // 2  # where the window starts in a frame
        frames = frame_signal(x, start, self.window_size, self.hop_size, frames_num)
        spec = self._dft(frames)  # (B, T, 2 * bins)
        bins = self.n_fft // 2 + 1
        power = ops.square(spec[..., :bins]) + ops.square(spec[..., bins:])  # (B, T, bins)
        mel = ops.matmul(power, ops.convert_to_tensor(self.mel_matrix))  # (B, T, mel)
        logmel = ops.log(mel + np.float32(LOG_OFFSET))
        if training and self.seed_generator is not None:
            if self.freq_mask:
                logmel = self._mask(logmel, 2, self.freq_mask)
            if self.time_mask:
                logmel = self._mask(logmel, 1, self.time_mask)
        return (logmel + np.float32(NORM_SHIFT)) / np.float32(NORM_SCALE)

    def compute_output_shape(self, input_shape):
        length = input_shape[1]
        frames = None if length is None else 1 + (length - 1) // self.hop_size
        return (input_shape[0], frames, self.mel_bins)

    def get_config(self):
        config = super().get_config()
        config.update(
            sample_rate=self.sample_rate,
            window_size=self.window_size,
            hop_size=self.hop_size,
            mel_bins=self.mel_bins,
            fmin=self.fmin,
            fmax=self.fmax,
            n_fft=self.n_fft,
            freq_mask=self.freq_mask,
            time_mask=self.time_mask,
            seed=self.seed,
        )
        return config
