"""The losses of the exp output and the options of cross-entropy equal PyTorch: Poisson on the log
link (torch's PoissonNLLLoss(log_input=True) of the exp output's logits) and squared error
through exp; softmax cross-entropy with class weights, label smoothing or both (torch's
CrossEntropyLoss(weight, label_smoothing), whose mean divides by sum_i w_{y_i}); and sigmoid
cross-entropy with pos_weight (BCEWithLogitsLoss(pos_weight), times n_out). For each, in float64 to
1e-12: the forward pass, the objective and every gradient, with and without sample weights (torch
has none: its per-sample losses, reduction='none', weighted by hand and divided by sum_i s_i r_i);
20 train_step updates and a fit with a partial last batch and validation data, under SGD and
Adam; and one float32 network to 1e-5."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")

import fastnn

from helpers import batches
from test_torch_parity import (
    FLOAT64_TOL,
    OPTIMIZERS,
    assert_matches,
    linears,
    torch_flat,
    torch_output,
    torch_twin,
)

SIZES = [5, 12, 7, 4]
WEIGHT = [0.5, 2.0, 0.0, 3.0]   # a class of weight 0 among them
# name: (output activation, loss, loss_options, targets)
CASES = {
    "poisson-exp": ("exp", "poisson", {}, "counts"),
    "squared_error-exp": ("exp", "squared_error", {}, "rates"),
    "ce-weight": ("softmax", "cross_entropy", {"weight": WEIGHT}, "labels"),
    "ce-label_smoothing": ("softmax", "cross_entropy", {"label_smoothing": 0.15}, "labels"),
    "ce-both": ("softmax", "cross_entropy", {"weight": WEIGHT, "label_smoothing": 0.3},
                "labels"),
    # probability rows: torch's mean would divide by N, fastnn's by sum_i r_i (documented)
    "ce-both-probabilities": ("softmax", "cross_entropy",
                              {"weight": WEIGHT, "label_smoothing": 0.3}, "probabilities"),
    "bce-pos_weight": ("sigmoid", "cross_entropy", {"pos_weight": [3.0, 0.5, 1.0, 0.0]}, "unit"),
}


def targets(rng, kind, n):
    """Targets of a case: counts, positive rates, class labels, probability rows (their sums
    not 1) or values in [0, 1]."""
    if kind == "counts":
        return rng.poisson(2.0, size=(n, SIZES[-1])).astype(np.float64)
    if kind == "rates":
        return rng.uniform(0.2, 3.0, size=(n, SIZES[-1]))
    if kind == "labels":
        # no batch of 5 rows (nor the last of 3) of the weight-0 class alone
        return rng.permutation(np.arange(n) % SIZES[-1])
    return rng.uniform(size=(n, SIZES[-1]))


def setup(case, seed, n=23, dtype="float64"):
    """A network of the case with random biases, data of n rows and sample weights with zeros."""
    output_activation, loss, options, kind = CASES[case]
    rng = np.random.default_rng(seed)
    net = fastnn.MLP(SIZES, activation="tanh", output_activation=output_activation, loss=loss,
                     l2=0.01, dtype=dtype, seed=seed, loss_options=options)
    for b in net.biases:
        b[:] = rng.normal(scale=0.3, size=b.shape)
    X = rng.normal(size=(n, SIZES[0]))
    Y = targets(rng, kind, n)
    s = rng.uniform(0.2, 2.0, size=n)
    s[[1, 12]] = 0
    return net, X, Y, s


def torch_options(net):
    """The network's loss options, weights as float64 tensors."""
    return {name: torch.tensor(value, dtype=torch.float64) if isinstance(value, tuple) else value
            for name, value in net.loss_options.items()}


def torch_losses(net, logits, Y):
    """The per-sample losses L_i by torch's losses (reduction='none', summed over the outputs)."""
    options = torch_options(net)
    if net.loss_name == "poisson":
        loss = torch.nn.PoissonNLLLoss(log_input=True, full=False, reduction="none")
        return loss(logits, Y).sum(dim=1)
    if net.loss_name == "squared_error":
        return torch.nn.MSELoss(reduction="none")(torch.exp(logits), Y).sum(dim=1)
    if net.output_activation == "sigmoid":
        loss = torch.nn.BCEWithLogitsLoss(pos_weight=options["pos_weight"], reduction="none")
        return loss(logits, Y).sum(dim=1)
    return torch.nn.CrossEntropyLoss(weight=options.get("weight"), reduction="none",
                                     label_smoothing=options.get("label_smoothing", 0.0))(
        logits, Y)


def row_weights(net, Y):
    """r_i, by which the objective weighs each row in its denominator: with class weights w,
    torch's w_{y_i} for labels and sum_k w_k y_ik for probability rows; else ones."""
    weight = torch_options(net).get("weight")
    if weight is None:
        return torch.ones(len(Y), dtype=torch.float64)
    return weight[Y] if Y.ndim == 1 else (Y * weight).sum(dim=1)


def torch_mean(net, logits, Y):
    """torch's own mean (reduction='mean') of the loss, times n_out where fastnn sums over the
    outputs: fastnn's data term without sample weights."""
    options = torch_options(net)
    n_out = logits.shape[1]
    if net.loss_name == "poisson":
        return torch.nn.PoissonNLLLoss(log_input=True, full=False)(logits, Y) * n_out
    if net.loss_name == "squared_error":
        return torch.nn.MSELoss()(torch.exp(logits), Y) * n_out
    if net.output_activation == "sigmoid":
        return torch.nn.BCEWithLogitsLoss(pos_weight=options["pos_weight"])(logits, Y) * n_out
    return torch.nn.CrossEntropyLoss(weight=options.get("weight"),
                                     label_smoothing=options.get("label_smoothing", 0.0))(
        logits, Y)


def torch_objective(net, model, X, Y, s=None):
    """fastnn's J in torch: the data term (torch's mean where it is fastnn's, else the losses
    weighted by hand) plus (l2/2) sum ||W||^2."""
    logits = model(torch.from_numpy(np.asarray(X, dtype=np.float64)))
    Y = torch.from_numpy(Y)
    if s is None and not (Y.ndim == 2 and "weight" in net.loss_options):
        data = torch_mean(net, logits, Y)
    else:
        losses = torch_losses(net, logits, Y)
        weights = torch.ones_like(losses) if s is None else torch.from_numpy(s)
        data = (weights * losses).sum() / (weights * row_weights(net, Y)).sum()
    penalty = sum((linear.weight ** 2).sum() for linear in linears(model))
    return data + net.l2 / 2 * penalty


def check_against_torch(net, X, Y, s, tol):
    model = torch_twin(net)
    J_torch = torch_objective(net, model, X, Y, s)
    J_torch.backward()
    with torch.no_grad():
        expected = torch_output(model(torch.from_numpy(np.asarray(X, dtype=np.float64))),
                                net.output_activation).numpy()
    assert_matches(net.forward(X), expected, tol)
    assert net.loss(X, Y, s) == pytest.approx(J_torch.item(), rel=tol)
    J, dW, db = net.gradients(X, Y, s)
    assert J == pytest.approx(J_torch.item(), rel=tol)
    for l, linear in enumerate(linears(model)):
        assert_matches(dW[l], linear.weight.grad.numpy().T, tol)
        assert_matches(db[l], linear.bias.grad.numpy(), tol)


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "sample_weighted"])
def test_forward_loss_and_gradients_match_autograd(case, weighted):
    net, X, Y, s = setup(case, seed=51)
    check_against_torch(net, X, Y, s if weighted else None, FLOAT64_TOL)


@pytest.mark.parametrize("case", list(CASES))
def test_float32_network_matches_autograd_to_float32_precision(case):
    net, X, Y, s = setup(case, seed=52, dtype="float32")
    # torch in float64 from the float32 parameters and the float32-rounded data fastnn sees
    X = X.astype(np.float32)
    if Y.dtype.kind == "f":
        Y = Y.astype(np.float32).astype(np.float64)
    check_against_torch(net, X, Y, s.astype(np.float32).astype(np.float64), 1e-5)


def torch_step(net, model, optimizer, X, Y, s=None):
    optimizer.zero_grad()
    J = torch_objective(net, model, X, Y, s)
    J.backward()
    optimizer.step()
    return J.item()


def weighted_batches(X, Y, s, size):
    """The batches of `fit` with shuffle=False, with their sample weights (None without)."""
    if s is None:
        return [(Xb, Yb, None) for Xb, Yb in batches(X, Y, size)]
    return [(X[k:k + size], Y[k:k + size], s[k:k + size]) for k in range(0, len(X), size)]


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("kind", ["sgd", "adam"])
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "sample_weighted"])
def test_train_step_trajectory_matches_torch_optim(case, kind, weighted):
    net, X, Y, s = setup(case, seed=54)
    model = torch_twin(net)
    make_fastnn, make_torch = OPTIMIZERS[kind]
    optimizer, torch_optimizer = make_fastnn(), make_torch(model.parameters())
    sequence = weighted_batches(X, Y, s if weighted else None, 5)
    for step in range(20):
        Xb, Yb, sb = sequence[step % len(sequence)]
        J = net.train_step(Xb, Yb, optimizer, sample_weight=sb)
        assert J == pytest.approx(torch_step(net, model, torch_optimizer, Xb, Yb, sb),
                                  rel=FLOAT64_TOL), f"step {step}"
    assert optimizer.steps == 20
    assert_matches(net.params, torch_flat(model), FLOAT64_TOL)


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("kind", ["sgd", "adam"])
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "sample_weighted"])
def test_fit_without_shuffle_matches_torch_optim(case, kind, weighted):
    net, X, Y, s = setup(case, seed=55, n=31)
    # 23 rows to train on in batches of 5 (the last has 3); 8 to validate on
    train, validation = slice(0, 23), slice(23, None)
    s = s if weighted else None
    s_train, s_val = (None, None) if s is None else (s[train], s[validation])
    model = torch_twin(net)
    make_fastnn, make_torch = OPTIMIZERS[kind]
    optimizer, torch_optimizer = make_fastnn(), make_torch(model.parameters())
    validation_data = (X[validation], Y[validation]) + (() if s is None else (s_val,))
    history = net.fit(X[train], Y[train], optimizer=optimizer, epochs=4, batch_size=5,
                      shuffle=False, sample_weight=s_train, validation_data=validation_data)
    losses, val_losses = [], []
    for _ in range(4):
        total = weight = 0.0
        for Xb, Yb, sb in weighted_batches(X[train], Y[train], s_train, 5):
            J = torch_step(net, model, torch_optimizer, Xb, Yb, sb)
            # each batch counts by its normalizer, the sum of s_i r_i
            S = float((row_weights(net, torch.from_numpy(Yb)).numpy()
                       * (1.0 if sb is None else sb)).sum())
            total, weight = total + J * S, weight + S
        losses.append(total / weight)
        with torch.no_grad():
            val_losses.append(torch_objective(net, model, X[validation], Y[validation],
                                              s_val).item())
    np.testing.assert_allclose(history.loss, losses, rtol=FLOAT64_TOL)
    np.testing.assert_allclose(history.val_loss, val_losses, rtol=FLOAT64_TOL)
    assert optimizer.steps == 4 * 5
    assert_matches(net.params, torch_flat(model), FLOAT64_TOL)
