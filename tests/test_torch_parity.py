"""fastnn equals PyTorch: on deep float64 networks of mixed widths, the forward pass, the objective
(torch's losses rescaled to fastnn's definitions, plus the L2 penalty) and every gradient agree with
autograd to ~1e-12 for every hidden activation and output/loss pair; and training trajectories of
SGD (plain, momentum, Nesterov) and Adam, by `train_step` and by `fit` with shuffle=False, follow
`torch.optim` step for step over the same batches. The sample-weighted objective
sum_i s_i L_i / sum_i s_i and one float32 network (to ~1e-5) agree too."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")

import fastnn
from fastnn import _kernels
from fastnn.layers import Activation, BatchNorm, Dense, Dropout

from helpers import HIDDEN_ACTIVATIONS, OUTPUT_LOSS_PAIRS, batches, make_targets

# name: the torch module, made from the activation's parameter (for those that have one)
TORCH_ACTIVATIONS = {"sigmoid": torch.nn.Sigmoid, "relu": torch.nn.ReLU, "tanh": torch.nn.Tanh,
                     "identity": torch.nn.Identity, "leaky_relu": torch.nn.LeakyReLU,
                     "elu": torch.nn.ELU, "gelu": torch.nn.GELU,
                     "gelu_tanh": lambda: torch.nn.GELU(approximate="tanh"),
                     "silu": torch.nn.SiLU, "softplus": torch.nn.Softplus}
# Four hidden layers of mixed widths; with 25 rows the 40-wide layer takes the BLAS path and the
# narrow ones the plain loop.
DEEP_SIZES = [6, 40, 3, 17, 8, 4]
FLOAT64_TOL = 1e-12


def assert_matches(actual, expected, tol):
    """Equal to `tol` relative to the largest magnitude in `expected`."""
    expected = np.asarray(expected, dtype=np.float64)
    np.testing.assert_allclose(actual, expected, rtol=tol,
                               atol=tol * max(1.0, np.abs(expected).max()))


def torch_twin(net):
    """The network as torch.nn.Linear layers in float64 holding fastnn's parameters
    (weight = W.T)."""
    layers = []
    for l, (W, b) in enumerate(zip(net.weights, net.biases)):
        linear = torch.nn.Linear(*W.shape, dtype=torch.float64)
        with torch.no_grad():
            linear.weight.copy_(torch.from_numpy(W.T.astype(np.float64)))
            linear.bias.copy_(torch.from_numpy(b.astype(np.float64)))
        layers.append(linear)
        if l < len(net.weights) - 1:
            layers.append(torch_activation(net.layers[2 * l + 1]))
    return torch.nn.Sequential(*layers)


def torch_activation(layer):
    """The torch module of an Activation layer, with its parameter if it has one."""
    info = fastnn.registry.ACTIVATIONS[layer.name]
    return TORCH_ACTIVATIONS[layer.name](*([layer.alpha] if info.parameter else []))


def linears(model):
    return [m for m in model if isinstance(m, torch.nn.Linear)]


def torch_flat(model, grad=False):
    """Parameters (or their gradients) of the twin, laid out like `MLP.params`."""
    parts = []
    for linear in linears(model):
        weight, bias = ((linear.weight.grad, linear.bias.grad) if grad
                        else (linear.weight, linear.bias))
        parts += [weight.detach().T.reshape(-1), bias.detach()]
    return torch.cat(parts).numpy()


def torch_output(logits, output_activation):
    if output_activation == "sigmoid":
        return torch.sigmoid(logits)
    if output_activation == "softmax":
        return torch.softmax(logits, dim=1)
    if output_activation == "exp":
        return torch.exp(logits)
    return logits


def torch_losses(net, logits, Y):
    """The per-sample losses L_i of absolute error, Huber and Poisson by torch's elementwise
    losses summed over the outputs (Poisson's on the log-rate, the exp output's logits)."""
    if net.loss_name == "poisson":
        loss = torch.nn.PoissonNLLLoss(log_input=True, full=False, reduction="none")
        return loss(logits, Y).sum(dim=1)
    if net.loss_name == "huber":
        loss = torch.nn.HuberLoss(reduction="none", delta=net.loss_options["delta"])
    else:
        loss = torch.nn.L1Loss(reduction="none")
    return loss(torch_output(logits, net.output_activation), Y).sum(dim=1)


def torch_objective(net, model, X, Y):
    """fastnn's J in torch: MSELoss * n_out, CrossEntropyLoss on logits, BCEWithLogitsLoss * n_out,
    plus (l2/2) sum ||W||^2."""
    logits = model(X)
    n_out = net.sizes[-1]
    if net.loss_name == "squared_error":
        data = torch.nn.MSELoss()(torch_output(logits, net.output_activation), Y) * n_out
    elif net.loss_name in ("absolute_error", "huber", "poisson"):
        data = torch_losses(net, logits, Y).mean()
    elif net.output_activation == "softmax":
        data = torch.nn.CrossEntropyLoss()(logits, Y)
    else:
        data = torch.nn.BCEWithLogitsLoss()(logits, Y) * n_out
    penalty = sum((linear.weight ** 2).sum() for linear in linears(model))
    return data + net.l2 / 2 * penalty


def deep_network(activation, output_activation, loss, seed, dtype="float64"):
    net = fastnn.MLP(DEEP_SIZES, activation=activation, output_activation=output_activation,
                     loss=loss, l2=0.05, dtype=dtype, seed=seed)
    rng = np.random.default_rng(seed)
    for b in net.biases:
        b[:] = rng.normal(scale=0.3, size=b.shape)
    X = rng.normal(size=(25, DEEP_SIZES[0]))
    Y = make_targets(rng, 25, DEEP_SIZES[-1], output_activation, loss)
    return net, X, Y


def check_against_torch(net, X, Y, Y_torch, tol):
    model = torch_twin(net)
    X_torch = torch.from_numpy(np.asarray(X, dtype=np.float64))
    J_torch = torch_objective(net, model, X_torch, Y_torch)
    J_torch.backward()
    expected_output = torch_output(model(X_torch), net.output_activation).detach().numpy()
    assert_matches(net.forward(X), expected_output, tol)
    assert net.loss(X, Y) == pytest.approx(J_torch.item(), rel=tol)
    J, dW, db = net.gradients(X, Y)
    assert J == pytest.approx(J_torch.item(), rel=tol)
    for l, linear in enumerate(linears(model)):
        assert_matches(dW[l], linear.weight.grad.numpy().T, tol)
        assert_matches(db[l], linear.bias.grad.numpy(), tol)


@pytest.mark.parametrize("activation", HIDDEN_ACTIVATIONS)
@pytest.mark.parametrize("output_activation, loss", OUTPUT_LOSS_PAIRS)
def test_forward_loss_and_gradients_match_autograd(activation, output_activation, loss):
    net, X, Y = deep_network(activation, output_activation, loss, seed=21)
    check_against_torch(net, X, Y, torch.from_numpy(Y), FLOAT64_TOL)


@pytest.mark.parametrize("activation", HIDDEN_ACTIVATIONS)
def test_softmax_cross_entropy_with_integer_labels_matches_autograd(activation):
    net, X, _ = deep_network(activation, "softmax", "cross_entropy", seed=22)
    labels = np.random.default_rng(22).integers(DEEP_SIZES[-1], size=len(X))
    check_against_torch(net, X, labels, torch.from_numpy(labels), FLOAT64_TOL)


def test_softmax_cross_entropy_with_unnormalized_probability_rows_matches_autograd():
    net, X, _ = deep_network("tanh", "softmax", "cross_entropy", seed=23)
    Y = np.random.default_rng(23).uniform(size=(len(X), DEEP_SIZES[-1]))
    check_against_torch(net, X, Y, torch.from_numpy(Y), FLOAT64_TOL)


@pytest.mark.parametrize("output_activation, loss", OUTPUT_LOSS_PAIRS)
def test_float32_network_matches_autograd_to_float32_precision(output_activation, loss):
    net, X, Y = deep_network("tanh", output_activation, loss, seed=24, dtype="float32")
    assert net.params.dtype == np.float32
    # torch in float64 from the float32 parameters and the float32-rounded data fastnn sees
    X, Y = X.astype(np.float32), Y.astype(np.float32)
    check_against_torch(net, X, Y, torch.from_numpy(Y.astype(np.float64)), 1e-5)


@pytest.mark.parametrize("output_activation, loss", OUTPUT_LOSS_PAIRS)
def test_sample_weighted_objective_matches_autograd(output_activation, loss):
    net, X, Y = deep_network("sigmoid", output_activation, loss, seed=25)
    weights = np.random.default_rng(25).uniform(0, 3, size=len(X))
    weights[[0, 7]] = 0
    model = torch_twin(net)
    logits = model(torch.from_numpy(X))
    Y_torch, s = torch.from_numpy(Y), torch.from_numpy(weights)
    if loss == "squared_error":
        losses = ((torch_output(logits, output_activation) - Y_torch) ** 2).sum(dim=1)
    elif loss in ("absolute_error", "huber", "poisson"):
        losses = torch_losses(net, logits, Y_torch)
    elif output_activation == "softmax":
        losses = torch.nn.CrossEntropyLoss(reduction="none")(logits, Y_torch)
    else:
        losses = torch.nn.BCEWithLogitsLoss(reduction="none")(logits, Y_torch).sum(dim=1)
    penalty = sum((linear.weight ** 2).sum() for linear in linears(model))
    J_torch = (s * losses).sum() / s.sum() + net.l2 / 2 * penalty
    J_torch.backward()
    J, dW, db = net.gradients(X, Y, weights)
    assert J == pytest.approx(J_torch.item(), rel=FLOAT64_TOL)
    assert net.loss(X, Y, weights) == pytest.approx(J_torch.item(), rel=FLOAT64_TOL)
    for l, linear in enumerate(linears(model)):
        assert_matches(dW[l], linear.weight.grad.numpy().T, FLOAT64_TOL)
        assert_matches(db[l], linear.bias.grad.numpy(), FLOAT64_TOL)


# The torch.optim class of each registered update rule.
TORCH_OPTIMIZERS = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam, "adamw": torch.optim.AdamW,
                    "rmsprop": torch.optim.RMSprop}
OPTIMIZERS = {
    "sgd": (lambda: fastnn.SGD(lr=0.1), lambda p: torch.optim.SGD(p, lr=0.1)),
    "momentum": (lambda: fastnn.SGD(lr=0.05, momentum=0.9),
                 lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9)),
    "nesterov": (lambda: fastnn.SGD(lr=0.05, momentum=0.8, nesterov=True),
                 lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.8, nesterov=True)),
    # torch's weight decay, on the biases too, on top of the network's own l2
    "sgd_weight_decay": (lambda: fastnn.SGD(lr=0.1, weight_decay=0.05),
                         lambda p: torch.optim.SGD(p, lr=0.1, weight_decay=0.05)),
    "momentum_weight_decay": (lambda: fastnn.SGD(lr=0.05, momentum=0.9, weight_decay=0.02),
                              lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9,
                                                        weight_decay=0.02)),
    "nesterov_weight_decay": (
        lambda: fastnn.SGD(lr=0.05, momentum=0.8, nesterov=True, weight_decay=0.1),
        lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.8, nesterov=True, weight_decay=0.1)),
    "adam": (lambda: fastnn.Adam(lr=0.01), lambda p: torch.optim.Adam(p, lr=0.01)),
    "adam_custom": (lambda: fastnn.Adam(lr=0.003, beta1=0.5, beta2=0.9, eps=1e-4),
                    lambda p: torch.optim.Adam(p, lr=0.003, betas=(0.5, 0.9), eps=1e-4)),
    "adam_weight_decay": (lambda: fastnn.Adam(lr=0.01, weight_decay=0.05),
                          lambda p: torch.optim.Adam(p, lr=0.01, weight_decay=0.05)),
    "adamw": (lambda: fastnn.AdamW(lr=0.01), lambda p: torch.optim.AdamW(p, lr=0.01)),
    "adamw_custom": (lambda: fastnn.AdamW(lr=0.003, beta1=0.5, beta2=0.9, eps=1e-4,
                                          weight_decay=0.3),
                     lambda p: torch.optim.AdamW(p, lr=0.003, betas=(0.5, 0.9), eps=1e-4,
                                                 weight_decay=0.3)),
    "rmsprop": (lambda: fastnn.RMSprop(lr=0.01), lambda p: torch.optim.RMSprop(p, lr=0.01)),
    "rmsprop_momentum": (lambda: fastnn.RMSprop(lr=0.003, alpha=0.9, momentum=0.8),
                         lambda p: torch.optim.RMSprop(p, lr=0.003, alpha=0.9, momentum=0.8)),
    "rmsprop_centered": (
        lambda: fastnn.RMSprop(lr=0.003, alpha=0.8, eps=1e-4, centered=True, weight_decay=0.1),
        lambda p: torch.optim.RMSprop(p, lr=0.003, alpha=0.8, eps=1e-4, centered=True,
                                      weight_decay=0.1)),
    "rmsprop_centered_momentum": (
        lambda: fastnn.RMSprop(lr=0.002, momentum=0.5, centered=True),
        lambda p: torch.optim.RMSprop(p, lr=0.002, momentum=0.5, centered=True)),
}
# (hidden activation, output activation, loss) of the networks the trajectories train
TRAJECTORY_NETWORKS = [("tanh", "softmax", "cross_entropy"), ("relu", "identity", "squared_error")]


def trajectory_setup(kind, setting, seed):
    """A network, data of 23 rows (batches of 5 leave a last batch of 3), the two optimizers and
    the torch twin."""
    activation, output_activation, loss = setting
    rng = np.random.default_rng(seed)
    net = fastnn.MLP([4, 12, 7, 3], activation=activation, output_activation=output_activation,
                     loss=loss, l2=1e-3, seed=seed)
    X = rng.normal(size=(23, 4))
    Y = make_targets(rng, 23, 3, output_activation, loss)
    model = torch_twin(net)
    make_fastnn, make_torch = OPTIMIZERS[kind]
    return net, X, Y, make_fastnn(), model, make_torch(model.parameters())


def torch_step(net, model, optimizer, X, Y):
    optimizer.zero_grad()
    J = torch_objective(net, model, torch.from_numpy(X), torch.from_numpy(Y))
    J.backward()
    optimizer.step()
    return J.item()


@pytest.mark.parametrize("kind", list(OPTIMIZERS))
@pytest.mark.parametrize("setting", TRAJECTORY_NETWORKS, ids="-".join)
def test_train_step_trajectory_matches_torch_optim(kind, setting):
    net, X, Y, optimizer, model, torch_optimizer = trajectory_setup(kind, setting, seed=31)
    sequence = batches(X, Y, 5)
    for step in range(50):
        Xb, Yb = sequence[step % len(sequence)]
        J = net.train_step(Xb, Yb, optimizer)
        assert J == pytest.approx(torch_step(net, model, torch_optimizer, Xb, Yb),
                                  rel=FLOAT64_TOL), f"step {step}"
    assert optimizer.steps == 50
    assert_matches(net.params, torch_flat(model), FLOAT64_TOL)


@pytest.mark.parametrize("kind", list(OPTIMIZERS))
@pytest.mark.parametrize("setting", TRAJECTORY_NETWORKS, ids="-".join)
def test_fit_without_shuffle_matches_torch_optim(kind, setting):
    net, X, Y, optimizer, model, torch_optimizer = trajectory_setup(kind, setting, seed=32)
    history = net.fit(X, Y, optimizer=optimizer, epochs=6, batch_size=5, shuffle=False)
    torch_epoch_losses = []
    for _ in range(6):
        total = sum(torch_step(net, model, torch_optimizer, Xb, Yb) * len(Xb)
                    for Xb, Yb in batches(X, Y, 5))
        torch_epoch_losses.append(total / len(X))
    np.testing.assert_allclose(history.loss, torch_epoch_losses, rtol=FLOAT64_TOL)
    assert optimizer.steps == 6 * 5
    assert_matches(net.params, torch_flat(model), FLOAT64_TOL)


# ---- networks built from a layer plan: dropout and batch normalization -------------------

class InjectedDropout(torch.nn.Module):
    """torch's inverted dropout with fastnn's masks injected: in training, the mask of a batch of
    N rows is drawn from fastnn's generator (stream `key`) at the shared counter, as the engine
    draws it, so both libraries drop the same units."""

    def __init__(self, rate, generator):
        super().__init__()
        self.rate, self.generator = rate, generator

    def forward(self, x):
        if not self.training or self.rate == 0:
            return x
        key, counter = self.generator["key"], self.generator["counter"]
        u = _kernels.uniform(key, counter, x.numel()).reshape(tuple(x.shape))
        self.generator["counter"] = counter + x.numel()
        return x * torch.from_numpy((u >= self.rate) * (1 / (1 - self.rate)))


TORCH_LAYERS = {
    "dense": lambda layer, width, generator: torch.nn.Linear(width, layer.units, bias=layer.bias,
                                                             dtype=torch.float64),
    "activation": lambda layer, width, generator: torch_activation(layer),
    "dropout": lambda layer, width, generator: InjectedDropout(layer.rate, generator),
    "batch_norm": lambda layer, width, generator: torch.nn.BatchNorm1d(
        width, eps=layer.eps, momentum=layer.momentum, affine=layer.affine, dtype=torch.float64),
}
TORCH_NAMES = {"W": "weight", "b": "bias", "gamma": "weight", "beta": "bias"}


def plan_twin(net):
    """The network's layers but the head as torch modules holding fastnn's parameters, buffers
    and dropout generator state."""
    key, counter = net.random_state
    generator = {"key": key, "counter": counter}
    modules, width = [], net.sizes[0]
    for layer in net.layers[:-1]:
        modules.append(TORCH_LAYERS[layer.kind](layer, width, generator))
        width = getattr(layer, "units", width)
    model = torch.nn.Sequential(*modules)
    with torch.no_grad():
        for name, value in net.named_parameters().items():
            k, role = name.split(".")
            target = getattr(model[int(k)], TORCH_NAMES[role])
            target.copy_(torch.from_numpy(value.T if role == "W" else value.copy()))
        for name, value in net.named_buffers().items():
            k, role = name.split(".")
            getattr(model[int(k)], role).copy_(torch.from_numpy(value.copy()))
    return model, generator


def plan_flat(net, model, grad=False):
    """The twin's parameters (or their gradients) laid out like net.params."""
    parts = []
    for name in net.named_parameters():
        k, role = name.split(".")
        tensor = getattr(model[int(k)], TORCH_NAMES[role])
        tensor = tensor.grad if grad else tensor
        parts.append((tensor.T if role == "W" else tensor).detach().reshape(-1))
    return torch.cat(parts).numpy()


def plan_buffers(net, model):
    """The twin's running statistics laid out like net.buffers."""
    return np.concatenate([np.zeros(0)] + [
        getattr(model[int(name.split(".")[0])], name.split(".")[1]).numpy()
        for name in net.named_buffers()])


PLANS = {
    "dropout": lambda out: [Dense(12), Activation("relu"), Dropout(0.4), Dense(7),
                            Activation("tanh"), Dropout(0.2), Dense(3), Activation(out)],
    "batch_norm": lambda out: [Dense(12, bias=False), BatchNorm(momentum=0.2, eps=1e-3),
                               Activation("sigmoid"), Dense(7, bias=False),
                               BatchNorm(affine=False), Activation("relu"), Dense(3),
                               Activation(out)],
    "both": lambda out: [Dense(12, bias=False), BatchNorm(), Activation("tanh"), Dropout(0.3),
                         Dense(3), Activation(out)],
    # activations that keep Z, with a dropout overwriting their output and a normalization after
    "keeps_z": lambda out: [Dense(12), Activation("gelu"), Dropout(0.3), Dense(7),
                            Activation("silu"), BatchNorm(), Dense(5), Activation("softplus"),
                            Dense(3), Activation(out)],
    # a bias before the normalization is subtracted again: its gradient is rounding noise, which
    # Adam amplifies, so this one is checked with SGD's trajectories and the gradients only
    "bias_before_norm": lambda out: [Dense(12), BatchNorm(), Activation("relu"), Dense(3),
                                     Activation(out)],
}


def plan_setup(plan, output_activation, loss, seed, n=23):
    rng = np.random.default_rng(seed)
    net = fastnn.MLP.from_layers(5, PLANS[plan](output_activation), loss=loss, l2=0.02,
                                 seed=seed)
    for b in net.biases:
        b[:] = rng.normal(scale=0.3, size=b.shape)
    for name, value in net.named_parameters().items():
        if name.endswith(("gamma", "beta")):
            value[:] = rng.normal(1 if name.endswith("gamma") else 0, 0.3, size=value.shape)
    X = rng.normal(size=(n, 5)) * 2 + 1
    Y = make_targets(rng, n, 3, output_activation, loss)
    return net, X, Y


@pytest.mark.parametrize("plan", list(PLANS))
@pytest.mark.parametrize("output_activation, loss", OUTPUT_LOSS_PAIRS)
def test_plan_forward_loss_and_gradients_match_autograd(plan, output_activation, loss):
    net, X, Y = plan_setup(plan, output_activation, loss, seed=41)
    model, _ = plan_twin(net)
    model.train()
    J_torch = torch_objective(net, model, torch.from_numpy(X), torch.from_numpy(Y))
    J_torch.backward()
    J, gradient = net.gradients(X, Y, flat=True)
    assert J == pytest.approx(J_torch.item(), rel=FLOAT64_TOL)
    assert_matches(gradient, plan_flat(net, model, grad=True), FLOAT64_TOL)
    J_list, dW, db = net.gradients(X, Y)
    assert J_list == J
    # torch's training forward moved its running statistics; fastnn's gradients changed nothing
    model, _ = plan_twin(net)
    model.eval()
    with torch.no_grad():
        expected = torch_output(model(torch.from_numpy(X)), output_activation).numpy()
        J_eval = torch_objective(net, model, torch.from_numpy(X), torch.from_numpy(Y)).item()
    assert_matches(net.forward(X), expected, FLOAT64_TOL)
    assert net.loss(X, Y) == pytest.approx(J_eval, rel=FLOAT64_TOL)


ADAM_PLANS = [plan for plan in PLANS if plan != "bias_before_norm"]


@pytest.mark.parametrize("plan, kind", [(plan, "momentum") for plan in PLANS]
                         + [(plan, "adam") for plan in ADAM_PLANS])
def test_plan_train_step_trajectory_matches_torch_optim(plan, kind):
    net, X, Y = plan_setup(plan, "softmax", "cross_entropy", seed=42)
    model, generator = plan_twin(net)
    model.train()
    make_fastnn, make_torch = OPTIMIZERS[kind]
    optimizer, torch_optimizer = make_fastnn(), make_torch(model.parameters())
    sequence = batches(X, Y, 5)
    for step in range(20):
        Xb, Yb = sequence[step % len(sequence)]
        J = net.train_step(Xb, Yb, optimizer)
        assert J == pytest.approx(torch_step(net, model, torch_optimizer, Xb, Yb),
                                  rel=FLOAT64_TOL), f"step {step}"
    assert net.random_state[1] == generator["counter"]
    assert_matches(net.params, plan_flat(net, model), FLOAT64_TOL)
    if net.buffers.size:
        assert_matches(net.buffers, plan_buffers(net, model), FLOAT64_TOL)


@pytest.mark.parametrize("plan", ADAM_PLANS)
def test_plan_fit_without_shuffle_matches_torch_and_its_running_statistics(plan):
    net, X, Y = plan_setup(plan, "identity", "squared_error", seed=43)
    key = net.random_state[0]
    history = net.fit(X, Y, optimizer=fastnn.Adam(lr=0.01), epochs=4, batch_size=5,
                      shuffle=False)
    twin_net, _, _ = plan_setup(plan, "identity", "squared_error", seed=43)
    assert twin_net.random_state == (key, 0)
    model, generator = plan_twin(twin_net)
    model.train()
    torch_optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    losses = []
    for _ in range(4):
        # 23 rows in batches of 5: the last batch has 3 rows
        total = sum(torch_step(twin_net, model, torch_optimizer, Xb, Yb) * len(Xb)
                    for Xb, Yb in batches(X, Y, 5))
        losses.append(total / len(X))
    np.testing.assert_allclose(history.loss, losses, rtol=FLOAT64_TOL)
    assert_matches(net.params, plan_flat(net, model), FLOAT64_TOL)
    if net.buffers.size:
        assert_matches(net.buffers, plan_buffers(net, model), FLOAT64_TOL)
    model.eval()
    with torch.no_grad():
        assert_matches(net.forward(X), model(torch.from_numpy(X)).numpy(), FLOAT64_TOL)


@pytest.mark.parametrize("plan", list(PLANS))
def test_float32_plan_matches_autograd_to_float32_precision(plan):
    net64, X, Y = plan_setup(plan, "sigmoid", "cross_entropy", seed=44)
    net = fastnn.MLP.from_layers(5, net64.layers, loss="cross_entropy", l2=0.02, dtype="float32")
    net.params[:] = net64.params
    net.random_state = net64.random_state
    X, Y = X.astype(np.float32), Y.astype(np.float32)
    model, _ = plan_twin(net)
    model.train()
    J_torch = torch_objective(net, model, torch.from_numpy(X.astype(np.float64)),
                              torch.from_numpy(Y.astype(np.float64)))
    J_torch.backward()
    J, gradient = net.gradients(X, Y, flat=True)
    assert J == pytest.approx(J_torch.item(), rel=1e-5)
    assert_matches(gradient, plan_flat(net, model, grad=True), 1e-4)
