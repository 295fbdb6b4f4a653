"""The registry is the one list of what the engine knows, and nothing in it ships untested: every
registered activation, loss, layer kind and update rule matches a compiled code, has a NumPy
reference (tests/references.py) and a PyTorch twin in the parity tests (tests/test_torch_parity.py),
and is reachable from the public API (thinc's test_ops_consistency is the model)."""
import pytest
import references

import fastnn
from fastnn import layers, registry


def test_every_registered_kind_has_a_numpy_reference():
    assert set(registry.ACTIVATIONS) == set(references.ACTIVATIONS)
    assert set(registry.LOSSES) == set(references.LOSSES)
    assert set(registry.LAYERS) == set(references.LAYERS)
    assert set(registry.OPTIMIZERS) == set(references.OPTIMIZERS)


def test_every_registered_kind_has_a_pytorch_twin():
    pytest.importorskip("torch")
    import test_torch_parity as parity
    assert set(registry.hidden_activations()) <= set(parity.TORCH_ACTIVATIONS)
    assert set(registry.LAYERS) == set(parity.TORCH_LAYERS)
    assert set(registry.OPTIMIZERS) == set(parity.TORCH_OPTIMIZERS)
    for name, info in registry.OPTIMIZERS.items():
        assert info.torch == f"torch.optim.{parity.TORCH_OPTIMIZERS[name].__name__}"
    # the sweeps of the parity tests run over every output/loss pair the registry allows
    pairs = {(output, name) for name, loss in registry.LOSSES.items() for output in loss.outputs}
    assert pairs == set(parity.OUTPUT_LOSS_PAIRS)
    assert set(registry.output_activations()) == {output for output, _ in pairs}


def test_every_layer_kind_and_optimizer_is_reachable_from_the_api():
    assert set(registry.LAYERS) == set(layers.KINDS)
    kinds = {cls._kind for cls in fastnn.Optimizer.__subclasses__()}
    assert kinds == set(registry.OPTIMIZERS)


def test_rules_in_the_registry_are_consistent():
    for info in registry.ACTIVATIONS.values():
        assert info.hidden or info.output
        assert info.init in ("he", "glorot")
    for info in registry.LOSSES.values():
        assert set(info.outputs) <= set(registry.output_activations())
        assert set(info.labels) <= set(info.outputs)
        for option in info.options:
            assert option.kind in ("positive", "fraction", "weights")
            assert set(option.outputs) <= set(info.outputs)


def test_an_unknown_update_rule_is_refused_not_run_as_another():
    from fastnn._rules import UpdateRule
    with pytest.raises(ValueError, match="unknown update rule"):
        UpdateRule(max(registry.OPTIMIZERS[n].code for n in registry.OPTIMIZERS) + 1, 0.1)
