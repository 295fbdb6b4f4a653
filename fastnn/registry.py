"""The one registry of what fastnn's engine knows: layer kinds, activations, losses, update rules
and learning-rate schedules, by the names the API uses, with their kernel codes and the rules that
go with them.

Everything that names a kind reads it from here: the network (`fastnn.MLP`, `fastnn.layers`), the
optimizers, `fastnn.sklearn`, the command line and the tests, whose sweeps run over these tables
(and whose consistency test fails when an entry has no NumPy reference or no PyTorch twin). Adding
an activation is its kernel branch in ``fastnn/_activations.pxd`` plus one entry below; see
CONTRIBUTING.md for the checklist of each kind.
"""
from dataclasses import dataclass

from fastnn._engine import ACTIVATION_CODES, INPUT_DERIVATIVES, LAYER_CODES, LOSS_CODES
from fastnn._rules import SCHEDULE_CODES, STATE_VECTORS, UPDATE_CODES

__all__ = ["ActivationInfo", "LossInfo", "LossOption", "LayerInfo", "OptimizerInfo",
           "ScheduleInfo", "ACTIVATIONS", "LOSSES", "LAYERS", "OPTIMIZERS", "SCHEDULES",
           "hidden_activations", "output_activations"]


@dataclass(frozen=True)
class ActivationInfo:
    """An activation function.

    Attributes
    ----------
    name : str
    code : int
        Its code in ``fastnn/_activations.pxd``.
    hidden, output : bool
        Whether it may follow a hidden layer, and whether it may be the output activation.
    init : {"he", "glorot"}
        How the weights of the dense layer before it are drawn: He-normal (``N(0, gain^2 /
        n_in)`` with ``gain^2 = 2 / (1 + alpha^2)``, alpha its parameter) or Glorot-uniform.
    parameter : str or None
        The name of its one parameter (the kernels' ``alpha``), if it has one.
    default : float
        The parameter's default.
    torch : str
        The PyTorch function it equals (the parity tests hold it to that).
    derivative : {"output", "input"}
        Whether its backward kernel takes f' from the output A (the engine then runs it in place
        over Z) or from Z (the engine keeps Z).
    """

    name: str
    code: int
    hidden: bool
    output: bool
    init: str
    torch: str
    parameter: str = None
    default: float = 0.0
    derivative: str = "output"


@dataclass(frozen=True)
class LossOption:
    """An option of a loss, given by its PyTorch name as ``MLP(..., loss_options={name: value})``.

    Attributes
    ----------
    name : str
        The keyword of the PyTorch loss it equals.
    kind : {"positive", "fraction", "weights"}
        What it is: a real > 0; a real in [0, 1]; one weight per output, finite and >= 0, not all
        zero (a sequence of n_out values, or one value for all). A real goes to the kernels as
        the loss' parameter (``loss_param``), weights as its weights per output
        (``loss_weight``): a loss has at most one of each for any output activation.
    outputs : tuple of str
        The output activations it goes with; empty for all of the loss'.
    default : float or None
        Its value when not given. None: off unless given (no weights, no smoothing), and then
        not listed in ``MLP.loss_options``.
    """

    name: str
    kind: str
    outputs: tuple = ()
    default: float = None


@dataclass(frozen=True)
class LossInfo:
    """A per-sample loss.

    Attributes
    ----------
    name : str
    code : int
        Its code in ``fastnn/_losses.pxd``.
    outputs : tuple of str
        The output activations it goes with.
    unit_targets : bool
        Whether targets must lie in [0, 1] (probabilities).
    labels : tuple of str
        Output activations with which 1-D integer class labels are accepted as targets.
    torch : str
        The PyTorch loss it equals, up to the factor in README's conventions.
    nonnegative_targets : bool
        Whether targets must be >= 0 (counts or rates).
    options : tuple of LossOption
        The options it takes (``MLP(..., loss_options=...)``).
    """

    name: str
    code: int
    outputs: tuple
    unit_targets: bool
    labels: tuple
    torch: str
    nonnegative_targets: bool = False
    options: tuple = ()

    def options_for(self, output):
        """The options it takes with the output activation ``output``, by name."""
        return {option.name: option for option in self.options
                if not option.outputs or output in option.outputs}


@dataclass(frozen=True)
class LayerInfo:
    """A kind of layer: a kernel pair in ``fastnn/_*.pxd``.

    Attributes
    ----------
    name : str
    code : int
        Its code in ``fastnn/_plan.pxd``.
    parameters : tuple of str
        Its trainable parameters, in their order in the flat parameter vector.
    buffers : tuple of str
        Its non-trainable state, in its order in the flat buffer vector.
    random : bool
        Whether its training pass draws random numbers.
    modes : bool
        Whether it computes differently in training and in evaluation.
    torch : str
        The PyTorch module it equals.
    """

    name: str
    code: int
    parameters: tuple
    buffers: tuple
    random: bool
    modes: bool
    torch: str


@dataclass(frozen=True)
class OptimizerInfo:
    """An update rule.

    Attributes
    ----------
    name : str
    code : int
        Its code in ``fastnn/_plan.pxd`` (UpdateKind).
    state : tuple of str
        Its state vectors, each as long as the parameters, by ``torch.optim``'s names.
    torch : str
        The ``torch.optim`` class whose steps it follows.
    """

    name: str
    code: int
    state: tuple
    torch: str


@dataclass(frozen=True)
class ScheduleInfo:
    """A learning-rate schedule.

    Attributes
    ----------
    name : str
    code : int or None
        Its code in ``fastnn/_plan.pxd`` (ScheduleKind), or None for a schedule run in Python
        (which cannot step inside the compiled epoch).
    torch : str
        The ``torch.optim.lr_scheduler`` class (or composition) whose learning rates it follows.
    """

    name: str
    code: int
    torch: str


ACTIVATIONS = {a.name: a for a in (
    ActivationInfo("identity", ACTIVATION_CODES["identity"], hidden=True, output=True,
                   init="glorot", torch="torch.nn.Identity"),
    ActivationInfo("sigmoid", ACTIVATION_CODES["sigmoid"], hidden=True, output=True,
                   init="glorot", torch="torch.sigmoid"),
    ActivationInfo("relu", ACTIVATION_CODES["relu"], hidden=True, output=False, init="he",
                   torch="torch.relu"),
    ActivationInfo("tanh", ACTIVATION_CODES["tanh"], hidden=True, output=False, init="glorot",
                   torch="torch.tanh"),
    ActivationInfo("softmax", ACTIVATION_CODES["softmax"], hidden=False, output=True,
                   init="glorot", torch="torch.softmax"),
    ActivationInfo("leaky_relu", ACTIVATION_CODES["leaky_relu"], hidden=True, output=False,
                   init="he", torch="torch.nn.LeakyReLU", parameter="negative_slope",
                   default=0.01),
    ActivationInfo("elu", ACTIVATION_CODES["elu"], hidden=True, output=False, init="he",
                   torch="torch.nn.ELU", parameter="alpha", default=1.0),
    ActivationInfo("gelu", ACTIVATION_CODES["gelu"], hidden=True, output=False, init="he",
                   torch="torch.nn.GELU", derivative="input"),
    ActivationInfo("gelu_tanh", ACTIVATION_CODES["gelu_tanh"], hidden=True, output=False,
                   init="he", torch="torch.nn.GELU(approximate='tanh')", derivative="input"),
    ActivationInfo("silu", ACTIVATION_CODES["silu"], hidden=True, output=False, init="he",
                   torch="torch.nn.SiLU", derivative="input"),
    ActivationInfo("softplus", ACTIVATION_CODES["softplus"], hidden=True, output=False,
                   init="glorot", torch="torch.nn.Softplus", derivative="input"),
    # the rate of a log link: its input is the log-rate
    ActivationInfo("exp", ACTIVATION_CODES["exp"], hidden=False, output=True, init="glorot",
                   torch="torch.exp"),
)}

LOSSES = {loss.name: loss for loss in (
    LossInfo("squared_error", LOSS_CODES["squared_error"],
             outputs=("identity", "sigmoid", "softmax", "exp"), unit_targets=False, labels=(),
             torch="torch.nn.MSELoss"),
    LossInfo("cross_entropy", LOSS_CODES["cross_entropy"], outputs=("softmax", "sigmoid"),
             unit_targets=True, labels=("softmax",),
             torch="torch.nn.CrossEntropyLoss / torch.nn.BCEWithLogitsLoss",
             options=(LossOption("weight", "weights", outputs=("softmax",)),
                      LossOption("label_smoothing", "fraction", outputs=("softmax",)),
                      LossOption("pos_weight", "weights", outputs=("sigmoid",)))),
    LossInfo("absolute_error", LOSS_CODES["absolute_error"],
             outputs=("identity", "sigmoid", "softmax", "exp"), unit_targets=False, labels=(),
             torch="torch.nn.L1Loss"),
    # computed from the exp output's input, the log-rate (torch's log_input=True); the network's
    # output is the rate
    LossInfo("poisson", LOSS_CODES["poisson"], outputs=("exp",), unit_targets=False,
             labels=(), torch="torch.nn.PoissonNLLLoss", nonnegative_targets=True),
    LossInfo("huber", LOSS_CODES["huber"], outputs=("identity", "sigmoid", "softmax", "exp"),
             unit_targets=False, labels=(), torch="torch.nn.HuberLoss",
             options=(LossOption("delta", "positive", default=1.0),)),
)}

LAYERS = {layer.name: layer for layer in (
    LayerInfo("dense", LAYER_CODES["dense"], parameters=("W", "b"), buffers=(), random=False,
              modes=False, torch="torch.nn.Linear"),
    LayerInfo("activation", LAYER_CODES["activation"], parameters=(), buffers=(), random=False,
              modes=False, torch="(see ACTIVATIONS)"),
    LayerInfo("dropout", LAYER_CODES["dropout"], parameters=(), buffers=(), random=True,
              modes=True, torch="torch.nn.Dropout"),
    LayerInfo("batch_norm", LAYER_CODES["batch_norm"], parameters=("gamma", "beta"),
              buffers=("running_mean", "running_var"), random=False, modes=True,
              torch="torch.nn.BatchNorm1d"),
)}

OPTIMIZERS = {o.name: o for o in (
    OptimizerInfo("sgd", UPDATE_CODES["sgd"], state=("momentum_buffer",), torch="torch.optim.SGD"),
    OptimizerInfo("adam", UPDATE_CODES["adam"], state=("exp_avg", "exp_avg_sq"),
                  torch="torch.optim.Adam"),
    OptimizerInfo("adamw", UPDATE_CODES["adamw"], state=("exp_avg", "exp_avg_sq"),
                  torch="torch.optim.AdamW"),
    OptimizerInfo("rmsprop", UPDATE_CODES["rmsprop"],
                  state=("square_avg", "momentum_buffer", "grad_avg"), torch="torch.optim.RMSprop"),
)}


SCHEDULES = {s.name: s for s in (
    ScheduleInfo("step", SCHEDULE_CODES["step"], torch="StepLR"),
    ScheduleInfo("exponential", SCHEDULE_CODES["exponential"], torch="ExponentialLR"),
    ScheduleInfo("warmup_cosine", SCHEDULE_CODES["warmup_cosine"],
                 torch="SequentialLR(LinearLR, CosineAnnealingLR)"),
    ScheduleInfo("plateau", None, torch="ReduceLROnPlateau"),
)}


def hidden_activations():
    """The names of the activations a hidden layer may have."""
    return tuple(name for name, a in ACTIVATIONS.items() if a.hidden)


def output_activations():
    """The names of the activations the output layer may have."""
    return tuple(name for name, a in ACTIVATIONS.items() if a.output)


def _check_against_kernels():
    """Every compiled code has exactly one entry, with the state the kernel declares; no loss
    has more options than the kernels take."""
    compiled_schedules = {name: s for name, s in SCHEDULES.items() if s.code is not None}
    for table, codes in ((ACTIVATIONS, ACTIVATION_CODES), (LOSSES, LOSS_CODES),
                         (LAYERS, LAYER_CODES), (OPTIMIZERS, UPDATE_CODES),
                         (compiled_schedules, SCHEDULE_CODES)):
        if {name: info.code for name, info in table.items()} != codes:
            raise ImportError(f"fastnn's registry and its compiled kernels disagree: "
                              f"{sorted(table)} against {sorted(codes)}; rebuild fastnn")
    if {n for n, a in ACTIVATIONS.items() if a.derivative == "input"} != INPUT_DERIVATIVES:
        raise ImportError("fastnn's registry and its kernels disagree on which activations take "
                          "their derivative from Z; rebuild fastnn")
    for loss in LOSSES.values():
        for output in loss.outputs:
            kinds = [option.kind == "weights" for option in loss.options_for(output).values()]
            if kinds.count(True) > 1 or kinds.count(False) > 1:
                raise ImportError(f"the loss {loss.name!r} has more options with the output "
                                  f"{output!r} than the kernels' one parameter and one weight "
                                  f"vector")
    for info in OPTIMIZERS.values():
        if len(info.state) != STATE_VECTORS[info.code]:
            raise ImportError(f"the update rule {info.name!r} keeps {STATE_VECTORS[info.code]} "
                              f"state vectors, the registry names {len(info.state)}")


_check_against_kernels()
