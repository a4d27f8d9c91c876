"""Times the PyTorch reference in its own interpreter, for ``benchmarks/inference.py``.

Run by ``inference.py --reference_python=PY`` as ``PY benchmarks/reference_child.py ...``,
where ``PY`` has ``torch`` and the ``panns_inference`` package (the reference's released
inference code: Cnn14 and Cnn14_DecisionLevelMax). Nothing here is imported by panns_keras;
this file only drives the reference's own model classes:

1. builds ``panns_inference.models.<class>`` with the front-end arguments of the panns_keras
   model it is compared with (``--frontend``, a JSON of its spec's front end), initialised
   with ``torch.manual_seed(seed)``, in eval mode;
2. saves its ``state_dict`` as ``reference.pth`` (``{"model": state_dict}``, the released
   checkpoints' layout) so the parent converts the very same weights with panns_keras;
3. scores the parent's agreement clips (``clips.npy``) -> ``reference_scores.npy``;
4. times one synthetic clip per thread count and prints ``threads=N seconds=S`` lines
   (median of ``--repeats`` after a warm-up, ``torch.no_grad``).

``panns_inference`` fetches its label list at import unless it finds one in
``$HOME/panns_data``; the parent runs this with ``HOME`` set to a temporary folder holding
a copy of panns_keras's own AudioSet class list, so nothing is downloaded.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--model", required=True, help="reference class name, e.g. Cnn14")
    p.add_argument("--work_dir", required=True)
    p.add_argument("--threads", default="1")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--clip_samples", type=int, default=320000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--frontend",
        required=True,
        help="JSON: sample_rate, window_size, hop_size, mel_bins, fmin, fmax",
    )
    a = p.parse_args()

    import torch
    from panns_inference import models

    work = Path(a.work_dir)
    torch.manual_seed(a.seed)
    net = getattr(models, a.model)(**json.loads(a.frontend), classes_num=527)
    net.eval()
    torch.save({"model": net.state_dict()}, work / "reference.pth")
    clips = torch.from_numpy(np.load(work / "clips.npy"))
    with torch.no_grad():
        scores = net(clips)["clipwise_output"].numpy()
    np.save(work / "reference_scores.npy", scores)
    x = torch.from_numpy(
        np.random.default_rng(a.seed).uniform(-0.1, 0.1, (1, a.clip_samples)).astype(np.float32)
    )
    for threads in [int(t) for t in a.threads.split(",")]:
        torch.set_num_threads(threads)
        with torch.no_grad():
            net(x)  # warm-up
            times = []
            for _ in range(a.repeats):
                t = time.perf_counter()
                net(x)
                times.append(time.perf_counter() - t)
        print(f"threads={threads} seconds={float(np.median(times)):.6f}", flush=True)
    print(f"torch={torch.__version__}", flush=True)


if __name__ == "__main__":
    main()
