"""Reference training trajectories (tests/assets/golden/train, or
$PANNS_KERAS_TRAIN_GOLDENS):
replay them with the trainer's own step and apply the check of their README (section 6)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from tests.helpers.golden import golden_state

GOLDENS_ENV = "PANNS_KERAS_TRAIN_GOLDENS"
ASSET_DIR = Path(__file__).resolve().parents[1] / "assets" / "golden" / "train"


def goldens_dir() -> Path:
    return Path(os.environ.get(GOLDENS_ENV) or ASSET_DIR)


def trajectory_names(directory: Path | None = None) -> list[str]:
    directory = directory or goldens_dir()
    return sorted(p.name[: -len("_train.npz")] for p in directory.glob("*_train.npz"))


class Trajectory:
    """One ``<ClassName>_train.npz`` with its inputs."""

    def __init__(self, name: str, directory: Path | None = None):
        directory = directory or goldens_dir()
        self.name = name
        self.z = np.load(directory / f"{name}_train.npz")
        self.meta = json.loads(str(self.z["meta"]))
        self.state = golden_state(self.z, self.meta)
        inputs = np.load(directory / self.meta["inputs_file"])
        self.K, self.B = int(self.meta["K"]), int(self.meta["B"])
        # The reference loader's int16_to_float32: x / 32767 (float64 division, then rounded).
        self.x = (inputs["waveform"][: self.K] / 32767.0).astype(np.float32)
        self.targets = inputs["targets"][: self.K].astype(np.float32)
        self.lambdas = inputs["mixup_lambda"][: self.K].astype(np.float32)

    def tol(self, key):
        return self.z[f"tol/{key}"]


# ------------------------------------------------------------------ model <-> torch layout
def _torch_values(layer) -> dict[str, np.ndarray]:
    """A mapped layer's weights in torch names and layouts (inverse of assign_state_dict)."""
    import keras

    w = [np.asarray(v.numpy()) for v in layer.weights]
    if isinstance(layer, keras.layers.BatchNormalization):
        return dict(zip(("weight", "bias", "running_mean", "running_var"), w))
    if isinstance(layer, keras.layers.DepthwiseConv2D):
        kernel = w[0].transpose(2, 3, 0, 1)
    elif isinstance(layer, keras.layers.Conv2D):
        kernel = w[0].transpose(3, 2, 0, 1)
    elif isinstance(layer, keras.layers.Conv1D):
        kernel = w[0].transpose(2, 1, 0)
    else:  # Dense
        kernel = w[0].T
    out = {"weight": kernel}
    if len(w) > 1:
        out["bias"] = w[1]
    return out


def torch_layers(model, traj) -> dict:
    """Reference module path -> layer, for the modules of the trajectory's state (a layer is
    named after its module path with '.' -> '_')."""
    from panns_keras.models.blocks import layer_name

    by_name = model.weight_layers()
    modules = sorted({key.rpartition(".")[0] for key in traj.state})
    found = {m: by_name[layer_name(m)] for m in modules if layer_name(m) in by_name}
    assert len(found) == len(by_name), sorted(set(by_name) - {layer_name(m) for m in found})
    return found


def torch_state(model, traj) -> dict[str, np.ndarray]:
    out = {}
    for path, layer in torch_layers(model, traj).items():
        for k, v in _torch_values(layer).items():
            out[f"{path}.{k}"] = v
    return out


def snapshot(model, traj: Trajectory) -> dict:
    """The state the check reads, in torch names and layouts: entries with an ``idx/`` in the
    golden at those indices only, the others whole, and ``[|W|, |W - W0|]`` (float64, W0 the
    initial weights) of every large entry. Keeps memory flat for 80M-parameter models."""
    z = traj.z
    values, norms = {}, {}
    for name, v in torch_state(model, traj).items():
        idx = z.get(f"idx/{name}")
        if idx is not None:
            # v is a (transposed) view: index it in place, no copy of the whole tensor
            values[name] = v[np.unravel_index(idx, v.shape)] if v.ndim else v
        else:
            values[name] = v
        if name in traj.meta["large_names"]:
            norms[name] = _norms(v, traj.state[name])
    return {"values": values, "norms": norms}


def _norms(v: np.ndarray, w0: np.ndarray, chunk: int = 1 << 21) -> tuple[float, float]:
    """``(|v|, |v - w0|)`` with float64 squares summed over slabs of ``v``'s first axis (a
    (transposed) view), so no float64 copy of the whole tensor is made."""
    rows = max(1, chunk // max(1, v[0].size)) if v.ndim > 1 else chunk
    sq = dsq = 0.0
    for r in range(0, v.shape[0], rows):
        w = np.array(v[r : r + rows], dtype=np.float64).reshape(-1)
        sq += float(np.dot(w, w))
        w -= w0[r : r + rows].reshape(-1)
        dsq += float(np.dot(w, w))
    return float(np.sqrt(sq)), float(np.sqrt(dsq))


def trainable_torch_names(model, traj) -> list[str]:
    """Torch names of ``model.trainable_variables`` (what the optimizer updates)."""
    import keras

    names = {}
    for path, layer in torch_layers(model, traj).items():
        keys = (
            ("weight", "bias", "running_mean", "running_var")
            if isinstance(layer, keras.layers.BatchNormalization)
            else ("weight", "bias")
        )
        for k, v in zip(keys, layer.weights):
            names[id(v)] = f"{path}.{k}"
    return sorted(names.get(id(v), f"<unmapped {v.path}>") for v in model.trainable_variables)


# ------------------------------------------------------------------ replay
def replay_config(model_name: str, batch: int, **train):
    """The reference recipe as a trainer config (dropout and SpecAugment off, as the goldens)."""
    from panns_keras.train.config import base_config

    c = base_config()
    c.model.name = model_name
    c.model.overrides.spec_augment = False
    c.model.disable_dropout = True
    c.data.num_classes = 527
    c.data.sample_rate = 32000
    c.data.mixup = "logmel"  # in-model mixup, in each model's own mixup domain
    c.train.batch_size = batch
    c.train.strategy = "default"
    for k, v in train.items():
        c.train[k] = v
    return c


def replay(traj: Trajectory, config, mutate_model=None, optimizer=None) -> dict:
    """Runs the trainer's step (``train/step.py`` through the backend layer of the Keras
    backend in use: ``tf_engine.make_step_fn`` or ``jax_engine.make_step_fn``) over the
    trajectory's K batches, with the trainer's model and optimizer factories (``optimizer``
    replaces the latter: mutant recipes)."""
    import keras

    from panns_keras.convert.mapping import assign_state_dict
    from panns_keras.train import optimizers, warm_start
    from panns_keras.train import step as step_lib

    model = warm_start.build_model_from_config(config)
    model.build((None, traj.x.shape[-1]))
    assign_state_dict(model, traj.state)
    if mutate_model is not None:
        mutate_model(model)
    optimizer = optimizer or optimizers.make_optimizer(config.train)
    optimizer.build(model.trainable_variables)
    groups = step_lib.variable_groups(model, optimizer)
    spec = step_lib.StepSpec.from_config(config)
    rec = {"loss": [], "clipwise": [], "steps": [], "trainable": trainable_torch_names(model, traj)}
    if keras.backend.backend() == "jax":
        from panns_keras.train.backends import jax_engine

        run = jax_engine.make_step_fn(model, groups, spec, with_outputs=True)
        state = jax_engine.initial_state(model, groups)

        def one_step(k):
            nonlocal state
            state, loss, clipwise = run(state, traj.x[k], traj.targets[k], traj.lambdas[k])
            jax_engine.write_back(model, groups, state)
            return loss, clipwise
    else:
        from panns_keras.train.backends import tf_engine

        run = tf_engine.make_step_fn(model, groups, spec, with_outputs=True)

        def one_step(k):
            batch = {"waveform": traj.x[k], "target": traj.targets[k]}
            return run(batch, traj.lambdas[k])

    for k in range(traj.K):
        loss, clipwise = one_step(k)
        rec["loss"].append(float(np.asarray(loss)))
        rec["clipwise"].append(np.asarray(clipwise))
        rec["steps"].append(k + 1)
        if k == 0:
            rec["step1"] = snapshot(model, traj)
    rec["final"] = snapshot(model, traj)
    rec["iterations"] = int(np.asarray(optimizer.iterations.value))
    return rec


# ------------------------------------------------------------------ the check (README §6)
def check(traj: Trajectory, rec: dict) -> dict[str, dict]:
    """Every part of the README's check: ``{part: {'worst': max value/tolerance, 'where',
    'failed': [...]}}``; a part passes iff ``failed`` is empty (``worst <= 1``, except the
    exact parts nbt and params)."""
    z, meta, K = traj.z, traj.meta, traj.K
    parts: dict[str, dict] = {}

    def note(part, where, value, tol, ok=None):
        p = parts.setdefault(part, {"worst": 0.0, "where": "", "failed": []})
        ratio = float(value) / float(tol) if tol > 0 else (0.0 if value == 0 else np.inf)
        if ratio > p["worst"]:
            p["worst"], p["where"] = ratio, where
        if not (ratio <= 1.0 if ok is None else ok):
            p["failed"].append(where)

    # Exactly the trainable tensors of the reference are trained.
    want = sorted(meta["param_names"])
    parts["params"] = {
        "worst": 0.0,
        "where": "",
        "failed": sorted(set(want) ^ set(rec["trainable"])),
    }
    for k in range(K):
        g = float(z["loss"][k])
        note("L", f"step {k + 1}", abs(rec["loss"][k] - g) / g, z["tol/loss"][k])
        err = np.max(np.abs(rec["clipwise"][k].astype(np.float64) - z["clipwise"][k]))
        note("C", f"step {k + 1}", err, z["tol/clipwise"][k])
    # num_batches_tracked: the trainer counts steps; the reference's counter starts at 1000.
    for part, got, want_n, key in (
        ("nbt", rec["steps"][0], 1, "step1"),
        ("nbt", rec["steps"][-1], K, "final"),
    ):
        ref = [
            int(z[n])
            for n in z.files
            if n.startswith(f"{key}/") and n.endswith("num_batches_tracked")
        ]
        ok = got == want_n and all(r == 1000 + want_n for r in ref)
        note(part, f"{key}: {got} steps", 0 if ok else 1, 1, ok)
    for part, key, state, tol in (
        ("B1", "step1", rec["step1"], z["tol/bn_step1"]),
        ("BK", "final", rec["final"], z["tol/bn_final"]),
    ):
        for i, layer in enumerate(meta["bn_layers"]):
            mean_g = z[f"{key}/{layer}.running_mean"].astype(np.float64)
            var_g = z[f"{key}/{layer}.running_var"].astype(np.float64)
            mean = state["values"][f"{layer}.running_mean"].astype(np.float64)
            var = state["values"][f"{layer}.running_var"].astype(np.float64)
            note(part, f"{layer} mean", np.max(np.abs(mean - mean_g) / np.sqrt(var_g)), tol[i, 0])
            note(part, f"{layer} var", np.max(np.abs(var - var_g) / var_g), tol[i, 1])
    abs_tol = float(z["tol/param_step1_abs"])
    for t, name in enumerate(meta["param_names"]):
        p1 = rec["step1"]["values"][name].astype(np.float64)
        off = int(np.sum(np.abs(p1 - z[f"step1/{name}"]) > abs_tol))
        note(
            "P1",
            name,
            off,
            max(int(z["tol/param_step1_count"][t]), 1e-12),
            off <= int(z["tol/param_step1_count"][t]),
        )
        pk = rec["final"]["values"][name].astype(np.float64)
        med = float(np.median(np.abs(pk - z[f"final/{name}"])))
        note("PK", name, med, z["tol/param_final_median"][t])
    for part, key, state, tol in (
        ("N1", "norm_step1", rec["step1"], z["tol/norm_step1"]),
        ("NK", "norm_final", rec["final"], z["tol/norm_final"]),
    ):
        for j, name in enumerate(meta["large_names"]):
            norm, delta = state["norms"][name]
            ref = z[f"{key}/{name}"]
            note(part, f"{name} |W|", abs(norm / ref[0] - 1), tol[j, 0])
            note(part, f"{name} |W-W0|", abs(delta / ref[1] - 1), tol[j, 1])
    return parts


def failed_parts(parts: dict) -> list[str]:
    return sorted(p for p, v in parts.items() if v["failed"])


def summary(parts: dict) -> str:
    """``part:worst`` per part (``!`` = failed; where, for parts above half their tolerance)."""
    out = []
    for p, v in sorted(parts.items()):
        where = f" ({v['where']})" if v["worst"] > 0.5 else ""
        out.append(f"{p}:{v['worst']:.3g}{'!' if v['failed'] else ''}{where}")
    return "  ".join(out)


# ------------------------------------------------------------------ optimizer probe (§10)
def adam_probe(optimizer, directory: Path | None = None) -> tuple[float, float]:
    """Applies the probe's 16 gradients with ``optimizer``; returns (max error, tolerance)."""
    import keras

    z = np.load((directory or goldens_dir()) / "adam_probe.npz")
    p = keras.Variable(z["p0"], dtype="float32", name="probe")
    optimizer.build([p])
    worst = 0.0
    for t in range(z["grads"].shape[0]):
        optimizer.apply_gradients([(keras.ops.convert_to_tensor(z["grads"][t]), p)])
        worst = max(worst, float(np.max(np.abs(np.asarray(p.numpy()) - z["p_after"][t]))))
    return worst, float(z["tol"])
