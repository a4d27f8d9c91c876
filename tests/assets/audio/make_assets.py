"""Regenerates the test clips in this folder (run by hand; tests never read the shared data folder).

usage: python tests/assets/audio/make_assets.py SHARED_DATA_DIR
(the project's shared data folder: real_sounds/ and fsdd/ with their licences)
"""

import os
import shutil
import sys

import numpy as np
import soundfile as sf
import soxr

HERE = os.path.dirname(os.path.abspath(__file__))
REAL = [
    "ovos_sheep.wav",
    "ovos_rooster.wav",
    "freedesktop_camera-shutter.wav",
    "asterisk_call-forwarding.wav",
    "librosa_robin.wav",
    "gcompris_memory_LRBark_1_LA_cut.wav",
]
FSDD = ["0_george_0.wav", "1_jackson_0.wav", "7_theo_0.wav"]


def main(shared):
    for name in REAL:
        shutil.copy(os.path.join(shared, "real_sounds", "audio", name), HERE)
    for name in FSDD:
        shutil.copy(
            os.path.join(shared, "fsdd", "recordings", name),
            os.path.join(HERE, "fsdd_" + name),
        )
    # Derived formats (same recordings, other containers / rates / channel counts).
    x, sr = sf.read(os.path.join(HERE, "ovos_rooster.wav"), dtype="float64")
    y = soxr.resample(x, sr, 44100, quality="VHQ")
    stereo = np.stack([y, 0.5 * y], axis=1)  # right channel 6 dB down
    sf.write(
        os.path.join(HERE, "ovos_rooster_44k_stereo.flac"),
        stereo,
        44100,
        subtype="PCM_16",
    )
    x, sr = sf.read(os.path.join(HERE, "librosa_robin.wav"), dtype="float64")
    sf.write(os.path.join(HERE, "librosa_robin_48k.ogg"), soxr.resample(x, sr, 48000), 48000)
    x, sr = sf.read(os.path.join(HERE, "ovos_sheep.wav"), dtype="float64")
    sf.write(os.path.join(HERE, "ovos_sheep_24bit.wav"), x, sr, subtype="PCM_24")
    x, sr = sf.read(os.path.join(HERE, "freedesktop_camera-shutter.wav"), dtype="float64")
    sf.write(
        os.path.join(HERE, "freedesktop_camera-shutter_22k.mp3"),
        soxr.resample(x, sr, 22050),
        22050,
    )


if __name__ == "__main__":
    if len(sys.argv) != 2 or not os.path.isdir(os.path.join(sys.argv[1], "real_sounds")):
        sys.exit(f"usage: {sys.argv[0]} SHARED_DATA_DIR (a folder with real_sounds/ and fsdd/)")
    main(sys.argv[1])
