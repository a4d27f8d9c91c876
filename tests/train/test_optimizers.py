"""TorchAdam: torch.optim.Adam / AdamW updates (weight decay forms), config round trip."""

import keras
import numpy as np
import pytest

from panns_keras.train.optimizers import TorchAdam


def _torch_adam(p, grads, lr, wd, decoupled, amsgrad=True, b1=0.9, b2=0.999, eps=1e-8):
    """torch.optim.Adam / AdamW single-tensor update in float64 (their documented form)."""
    p = p.astype(np.float64)
    m, v, vmax = np.zeros_like(p), np.zeros_like(p), np.zeros_like(p)
    out = []
    for t, g in enumerate(grads, start=1):
        g = g.astype(np.float64)
        if decoupled:
            p = p * (1 - lr * wd)
        else:
            g = g + wd * p
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        vmax = np.maximum(vmax, v) if amsgrad else v
        p = p - lr / (1 - b1**t) * m / (np.sqrt(vmax) / np.sqrt(1 - b2**t) + eps)
        out.append(p.copy())
    return out


@pytest.mark.parametrize("decoupled", [False, True])
@pytest.mark.parametrize("amsgrad", [False, True])
def test_matches_torch_update(decoupled, amsgrad):
    rng = np.random.default_rng(0)
    p0 = rng.standard_normal(64).astype(np.float32)
    grads = [
        (rng.standard_normal(64) * 10.0 ** rng.uniform(-9, 0, 64)).astype(np.float32)
        for _ in range(6)
    ]
    grads[3][:16] = 0.0  # a collapsed gradient: amsgrad's max matters
    want = _torch_adam(p0, grads, 1e-2, 0.1, decoupled, amsgrad)
    opt = TorchAdam(1e-2, weight_decay=0.1, decoupled=decoupled, amsgrad=amsgrad)
    var = keras.Variable(p0)
    opt.build([var])
    for g, w in zip(grads, want):
        opt.apply_gradients([(keras.ops.convert_to_tensor(g), var)])
        np.testing.assert_allclose(np.asarray(var.numpy()), w, rtol=0, atol=2e-6)
    # the other decay form is a different recipe
    other = _torch_adam(p0, grads, 1e-2, 0.1, not decoupled, amsgrad)
    assert np.max(np.abs(other[-1] - want[-1])) > 1e-4


def test_config_round_trip():
    opt = TorchAdam(3e-4, weight_decay=0.01, decoupled=True, epsilon=1e-8, amsgrad=True)
    again = TorchAdam.from_config(opt.get_config())
    assert (again.decoupled, again.l2, again.weight_decay) == (True, 0.0, 0.01)
    l2 = TorchAdam.from_config(TorchAdam(weight_decay=0.01).get_config())
    assert (l2.decoupled, l2.l2, l2.weight_decay) == (False, 0.01, None)
    assert keras.optimizers.deserialize(keras.optimizers.serialize(opt)).decoupled
