"""Training-step parity with the PANNs reference (README of tests/assets/golden/train).

Each golden trajectory is replayed with the trainer's own step (``trainer.make_step_fns``,
its model and optimizer factories) from the golden initial weights on the stored real-audio
batches and mixup lambdas, and must pass every part of the README's check (section 6). The
goldens come from ``tests/assets/golden/train`` or from ``$PANNS_KERAS_TRAIN_GOLDENS``.

The check is shown to bite: recipes that the reference's ``mutants.json`` records as caught
(wrong BatchNorm momentum, Adam without amsgrad, eps 1e-7, Keras-form eps, lr 1.1e-3) fail
here too, in the same parts.
"""

import gc
import json

import keras
import pytest

from panns_keras.models.registry import MODEL_SPECS
from panns_keras.train import trainer
from tests.helpers.golden_train import (
    Trajectory,
    adam_probe,
    check,
    failed_parts,
    goldens_dir,
    replay,
    replay_config,
    summary,
    trajectory_names,
)

BY_REFERENCE = {s.reference_name: s.name for s in MODEL_SPECS.values()}
FAST = {"Cnn6"}  # the others take 15-60 s each on 2 cores
# The trainer's default BatchNorm training kernel is the two-pass keras.ops one; the fused
# TensorFlow kernel (train.fused_batchnorm) fails Wavegram_Logmel_Cnn14's N1 part at 1.8x its
# tolerance (backward precision, notes in BUILD_NOTES.md) and is not what this checks.
KNOWN: dict[str, str] = {}


@pytest.fixture(autouse=True)
def _release_models():
    yield
    keras.backend.clear_session()
    gc.collect()


def _params():
    names = trajectory_names()
    assert names, f"no *_train.npz in {goldens_dir()}"
    out = []
    for n in names:
        marks = [] if n in FAST else [pytest.mark.slow]
        if n in KNOWN:
            marks.append(pytest.mark.xfail(reason=KNOWN[n], strict=True))
        out.append(pytest.param(n, id=n, marks=marks))
    return out


def _mutants():
    with open(goldens_dir() / "mutants.json") as f:
        return json.load(f)


@pytest.mark.parametrize("name", _params())
def test_trajectory_parity(name):
    traj = Trajectory(name)
    assert traj.meta["optimizer"]["amsgrad"] and traj.meta["optimizer"]["eps"] == 1e-8
    rec = replay(traj, replay_config(BY_REFERENCE[name], traj.B))
    parts = check(traj, rec)
    print(f"{name}: worst value/tolerance per part: {summary(parts)}")
    assert set(parts) == {"params", "L", "C", "nbt", "B1", "BK", "P1", "PK", "N1", "NK"}
    assert not failed_parts(parts), {p: v["failed"][:5] for p, v in parts.items() if v["failed"]}


# Reference mutant name -> the same mistake made in this trainer's config / model.
def _bn_momentum_001(model):
    for layer in model.weight_layers().values():
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = 0.99  # torch momentum 0.01


MUTANTS = {
    "a_bn_momentum_0.01": ({}, _bn_momentum_001, None),
    "c_adam_no_amsgrad": ({"amsgrad": False}, None, None),
    "d_adam_eps_1e-7": ({"epsilon": 1e-7}, None, None),
    "d2_keras_form_eps_1e-8": (
        {},
        None,
        lambda: keras.optimizers.Adam(1e-3, epsilon=1e-8, amsgrad=True),
    ),
    "g_lr_1.1e-3": ({"learning_rate": 1.1e-3}, None, None),
}


def _reference_failed(entry: dict) -> set[str]:
    return {
        p
        for p, v in entry.items()
        if isinstance(v, dict) and not v["pass"] and not p.startswith("nbt")
    }


SLOW_MUTANTS = {"d_adam_eps_1e-7", "g_lr_1.1e-3"}  # the optimizer probe also catches these


@pytest.mark.parametrize(
    "mutant",
    [
        pytest.param(m, marks=[pytest.mark.slow] if m in SLOW_MUTANTS else [])
        for m in sorted(MUTANTS)
    ],
)
def test_mutant_recipes_fail_cnn6(mutant):
    """A wrong recipe fails the check in the parts where the reference's own run failed."""
    traj = Trajectory("Cnn6")
    train, mutate, make_opt = MUTANTS[mutant]
    config = replay_config("cnn6", traj.B, **train)
    rec = replay(traj, config, mutate_model=mutate, optimizer=make_opt() if make_opt else None)
    parts = check(traj, rec)
    got = set(failed_parts(parts))
    want = _reference_failed(_mutants()["Cnn6"][mutant])
    print(f"{mutant}: failed {sorted(got)} (reference {sorted(want)}); {summary(parts)}")
    assert want, "mutants.json says the reference check catches this mutant"
    # Caught, and only in parts where the reference's own mutant failed (a part that the
    # reference failed just past its tolerance, e.g. PK at 1.18x, may pass here).
    assert got and got <= want, (got, want)


def test_adam_probe():
    """The trainer's optimizer reproduces torch.optim.Adam(amsgrad) on the probe (§10)."""
    err, tol = adam_probe(trainer.make_optimizer(replay_config("cnn6", 2).train))
    print(f"adam probe: max |p - p_ref| = {err:.3g}, tolerance {tol:.3g}")
    assert err <= tol


@pytest.mark.parametrize("mutant", sorted(m for m in MUTANTS if m != "a_bn_momentum_0.01"))
def test_adam_probe_catches_mutants(mutant):
    train, _, make_opt = MUTANTS[mutant]
    opt = (
        make_opt() if make_opt else trainer.make_optimizer(replay_config("cnn6", 2, **train).train)
    )
    err, tol = adam_probe(opt)
    assert _mutants()["_probe"][mutant]["pass"] is False
    assert err > tol, f"{mutant}: {err:.3g} <= {tol:.3g}"
