"""Keras 3 layers of the PANNs front end and heads (``keras.ops`` only, no TensorFlow).

Layouts are channels-last: log-mel ``(B, T, F)``, 2-D feature maps ``(B, T, F, C)``,
1-D feature maps ``(B, T, C)``.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from panns_keras.models.kernels import tensorflow_kernels

# ----------------------------------------------------------------------------- numpy helpers


def hann_window(n: int) -> np.ndarray:
    """Periodic Hann (``scipy.signal.get_window('hann', n, fftbins=True)``), float64."""
    return 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n) / n)


def dft_kernels(n_fft: int) -> tuple[np.ndarray, np.ndarray]:
    """Windowed DFT bases ``(n_fft, n_fft // 2 + 1)`` for the real and imaginary parts.

    Built in float64 and rounded once to float32, as torchlibrosa's ``conv_real`` /
    ``conv_imag`` weights (transposed to ``(n, k)``).
    """
    n = np.arange(n_fft)[:, None]
    k = np.arange(n_fft // 2 + 1)[None, :]
    phase = 2.0 * np.pi * ((n * k) % n_fft) / n_fft  # exact modulo keeps the phase small
    w = hann_window(n_fft)[:, None]
    return (np.cos(phase) * w).astype(np.float32), (-np.sin(phase) * w).astype(np.float32)


def _hz_to_mel(f: np.ndarray) -> np.ndarray:
    f = np.asarray(f, dtype=np.float64)
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, np.log(6.4) / 27.0
    safe = np.maximum(f, min_log_hz)
    return np.where(f >= min_log_hz, min_log_mel + np.log(safe / min_log_hz) / logstep, f / f_sp)


def _mel_to_hz(m: np.ndarray) -> np.ndarray:
    m = np.asarray(m, dtype=np.float64)
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, np.log(6.4) / 27.0
    return np.where(m >= min_log_mel, min_log_hz * np.exp(logstep * (m - min_log_mel)), f_sp * m)


def mel_filterbank(sr: int, n_fft: int, n_mels: int, fmin: float, fmax: float) -> np.ndarray:
    """Slaney-scale, Slaney-normalised mel matrix ``(n_fft // 2 + 1, n_mels)`` float32.

    Same definition as ``librosa.filters.mel(htk=False, norm='slaney')``, transposed.
    """
    fftfreqs = np.linspace(0.0, sr / 2.0, 1 + n_fft // 2)
    hz = _mel_to_hz(np.linspace(_hz_to_mel(fmin), _hz_to_mel(fmax), n_mels + 2))
    fdiff = np.diff(hz)
    ramps = hz[:, None] - fftfreqs[None, :]
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    weights *= (2.0 / (hz[2 : n_mels + 2] - hz[:n_mels]))[:, None]
    return weights.astype(np.float32).T


# ----------------------------------------------------------------------------- front end

_TINY = np.float32(1e-30)  # < any amin in use; only keeps log() off exact zeros


@keras.saving.register_keras_serializable(package="panns_keras")
class LogMelSpectrogram(keras.layers.Layer):
    """Waveform ``(B, L)`` to dB log-mel ``(B, T, mel_bins)``, T = 1 + L // hop_size.

    Periodic Hann, reflect-centred STFT as framing by reshapes and one matmul with fixed DFT
    kernels (no FFT op, so TFLite needs only builtin ops), power 2, Slaney mel, and
    ``10 * log10(max(mel, 1e-10))`` (ref 1, no top_db). Always computes in float32.

    Example:
        >>> layer = LogMelSpectrogram(32000, 1024, 320, 64, 50, 14000)
        >>> layer(np.zeros((1, 32000), "float32")).shape
        TensorShape([1, 101, 64])
    """

    def __init__(
        self,
        sample_rate=32000,
        window_size=1024,
        hop_size=320,
        mel_bins=64,
        fmin=50.0,
        fmax=14000.0,
        amin=1e-10,
        **kwargs,
    ):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.sample_rate, self.window_size, self.hop_size = sample_rate, window_size, hop_size
        self.mel_bins, self.fmin, self.fmax, self.amin = mel_bins, fmin, fmax, amin
        real, imag = dft_kernels(window_size)
        self.stft_real, self.stft_imag = real, imag  # (n_fft, n_bins) numpy, torch-comparable
        self.mel_matrix = mel_filterbank(sample_rate, window_size, mel_bins, fmin, fmax)
        self._kernel = np.concatenate([real, imag], axis=1)  # (n_fft, 2 * bins)

    def frames(self, padded, length):
        """Frames ``(B, T, window_size)`` of a padded waveform ``(B, length + window_size)``.

        Built from reshapes and slices, not a strided convolution: the signal is cut into
        hop-size blocks and frame t is blocks t .. t + n - 1 side by side (n = ceil(window /
        hop)), cut to the window. The DFT is then one matmul, which TFLite runs as a
        FULLY_CONNECTED (XNNPACK's GEMM) where the strided 1-channel CONV_2D it replaces was
        3x slower than TensorFlow's own kernel.
        """
        win, hop = self.window_size, self.hop_size
        n = -(-win // hop)
        frames_num = 1 + length // hop
        blocks_num = frames_num + n - 1
        x = ops.pad(padded, [[0, 0], [0, n * hop]])  # zeros past the last frame's end
        blocks = ops.reshape(x[:, : blocks_num * hop], (-1, blocks_num, hop))
        shifted = [blocks[:, j : (j - n + 1) or None] for j in range(n)]
        frames = shifted[0] if n == 1 else ops.concatenate(shifted, axis=-1)
        return frames[..., :win]

    def _dft(self, frames):
        """``frames @ kernel`` (B, T, 2 * bins). Off TensorFlow (XLA's CPU dot sums the 1024
        products in one float32 chain) the sum is taken in 8 partial sums, which brings the
        quiet bins of loud frames (the log-mel's worst case) to TensorFlow's accuracy: 0.0035
        instead of 0.08 dB max error on the training goldens' clips, which the reference
        trajectories need."""
        kernel = ops.convert_to_tensor(self._kernel)
        blocks = 8
        if tensorflow_kernels() or self.window_size % blocks:
            return ops.matmul(frames, kernel)
        part = self.window_size // blocks
        f = ops.reshape(frames, (-1, ops.shape(frames)[1], blocks, part))  # (B, T, 8, n/8)
        k = ops.reshape(kernel, (blocks, part, -1))  # (8, n/8, 2 * bins)
        return ops.sum(ops.einsum("btkc,kcn->btkn", f, k), axis=2)

    def call(self, waveform):
        x = ops.cast(waveform, "float32")
        pad = self.window_size // 2
        x = ops.pad(x, [[0, 0], [pad, pad]], mode="reflect")
        frames = self.frames(x, ops.shape(waveform)[1])
        spec = self._dft(frames)  # (B, T, 2 * bins)
        bins = self.window_size // 2 + 1
        power = ops.square(spec[..., :bins]) + ops.square(spec[..., bins:])  # (B, T, bins)
        mel = ops.matmul(power, ops.convert_to_tensor(self.mel_matrix))
        # 10 * log10(max(mel, amin)) computed as max(10 * log10(mel), 10 * log10(amin)): the
        # floor is held in dB (-100 for amin = 1e-10), which float16 represents exactly,
        # whereas TFLite float16 conversion would flush amin itself to 0 (log(0) = -inf).
        # The inner max keeps log and its gradient finite on exact zeros in float32 (in
        # float16 its constant becomes 0 and the outer max covers the -inf).
        db = 10.0 * ops.log(ops.maximum(mel, np.float32(min(self.amin, _TINY)))) / np.log(10.0)
        return ops.maximum(db, np.float32(10.0 * np.log10(self.amin)))

    def compute_output_shape(self, input_shape):
        length = input_shape[1]
        frames = None if length is None else 1 + length // self.hop_size
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
            amin=self.amin,
        )
        return config


@keras.saving.register_keras_serializable(package="panns_keras")
class SpecAugment(keras.layers.Layer):
    """torchlibrosa ``SpecAugmentation`` on ``(B, T, F)``: time stripes, then freq stripes.

    Per example and stripe: width ~ U{0, drop_width - 1}, start ~ U{0, size - width - 1}
    (torch ``randint`` bounds), band set to 0. Identity unless ``training``. Seeded.
    """

    def __init__(
        self,
        time_drop_width=64,
        time_stripes_num=2,
        freq_drop_width=8,
        freq_stripes_num=2,
        seed=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.time_drop_width, self.time_stripes_num = time_drop_width, time_stripes_num
        self.freq_drop_width, self.freq_stripes_num = freq_drop_width, freq_stripes_num
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def _stripe_mask(self, batch, size, width, stripes):
        # (B, stripes) widths in [0, width) and starts in [0, size - w): torch.randint bounds.
        w = keras.random.randint((batch, stripes), 0, width, seed=self.seed_generator)
        u = keras.random.uniform((batch, stripes), seed=self.seed_generator)
        start = ops.cast(ops.floor(u * ops.cast(size - w, "float32")), "int32")
        start = ops.minimum(start, ops.maximum(size - w - 1, 0))
        idx = ops.arange(size)[None, None, :]
        inside = (idx >= start[..., None]) & (idx < (start + w)[..., None])  # (B, S, size)
        return ops.any(inside, axis=1)  # (B, size)

    def call(self, x, training=None):
        if not training:
            return x
        shape = ops.shape(x)
        batch, frames, bins = shape[0], shape[1], shape[2]
        drop_t = self._stripe_mask(batch, frames, self.time_drop_width, self.time_stripes_num)
        drop_f = self._stripe_mask(batch, bins, self.freq_drop_width, self.freq_stripes_num)
        keep = ops.logical_not(drop_t[:, :, None] | drop_f[:, None, :])
        return ops.where(keep, x, ops.zeros_like(x))

    def get_config(self):
        config = super().get_config()
        config.update(
            time_drop_width=self.time_drop_width,
            time_stripes_num=self.time_stripes_num,
            freq_drop_width=self.freq_drop_width,
            freq_stripes_num=self.freq_stripes_num,
            seed=self.seed,
        )
        return config


def do_mixup(x, mixup_lambda):
    """Reference mixup of pairs: ``out[i] = lam[2i] * x[2i] + lam[2i+1] * x[2i+1]``.

    ``x`` has an even batch ``2B``; ``mixup_lambda`` is ``(2B,)``; the result has batch B.
    """
    lam = ops.cast(mixup_lambda, x.dtype)
    lam = ops.reshape(lam, (-1,) + (1,) * (len(x.shape) - 1))
    mixed = x * lam
    return mixed[0::2] + mixed[1::2]
