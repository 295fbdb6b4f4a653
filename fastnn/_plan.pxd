# Design: a network as data. A Plan is a sequence of Layers, each a kernel pair (fastnn/_dense.pxd,
# _activations.pxd, _dropout.pxd, _batchnorm.pxd) with what it owns laid out once, as llm.c lays
# out its parameter and activation tensors: its slice of the flat parameter vector (trainable),
# of the flat buffer vector (running statistics), and of the workspace (its output, what its
# backward pass reads). The last layer is the output activation, the head, whose derivative the
# loss kernels take together with the loss'. fastnn/_engine.pyx computes the offsets (see
# Engine.reserve for the rules of which layer may overwrite its input); fastnn/_passes.pxd runs
# the plan. Nothing here allocates or holds the GIL.
from libc.stdint cimport uint64_t

cdef enum LayerKind:
    DENSE = 0           # Z = A W + b; parameters W (n_in, n_out), b (n_out,) if affine
    ACTIVATION = 1      # A = f(Z), f by its code in _activations.pxd, derivative from A
    DROPOUT = 2         # A = X mask, mask drawn in training; the identity in evaluation
    BATCH_NORM = 3      # PyTorch's BatchNorm1d; parameters gamma, beta (if affine); buffers


cdef struct Layer:
    int kind                # LayerKind
    int act                 # ACTIVATION: the activation's code
    Py_ssize_t n_in, n_out  # widths of the input and output (equal but for DENSE)
    double alpha            # the activation's parameter; DROPOUT's rate; BATCH_NORM's momentum
    double eps              # BATCH_NORM's eps
    bint affine             # DENSE: with a bias; BATCH_NORM: with gamma and beta
    bint in_place           # the output overwrites the input (set by the memory plan)
    Py_ssize_t p_off        # start in the parameters (DENSE: W then b; BATCH_NORM: gamma, beta)
    Py_ssize_t n_p          # parameters owned
    Py_ssize_t buf_off      # BATCH_NORM: running mean then running variance, in the buffers
    Py_ssize_t out          # start of the output (rows, n_out) in the workspace
    # saved: start of what backward reads in the workspace: DROPOUT's mask (rows, n);
    # BATCH_NORM's xhat (rows, n), mean (n), 1/std (n)
    Py_ssize_t saved


cdef struct Plan:
    Py_ssize_t n_layers     # layers, the head last
    Layer* layers
    Py_ssize_t n_params     # length of the flat parameter vector
    Py_ssize_t n_buffers    # length of the flat buffer vector
    Py_ssize_t n_in, n_out
    Py_ssize_t first_param  # the first layer that owns parameters: backward stops there
    Py_ssize_t n_random     # random numbers a training pass draws per row (dropout units)
    Py_ssize_t d_off[2]     # two (rows, widest) buffers for dJ/dZ, used in turn
    Py_ssize_t scratch      # (2 widest,) for the backward kernels' column sums
    Py_ssize_t xb_off       # (rows, n_in) batch inputs gathered for a shuffled epoch
    Py_ssize_t yb_off       # (rows, n_out) batch targets gathered for a shuffled epoch
    Py_ssize_t sb_off       # (rows,) batch sample weights gathered for a shuffled epoch
    int loss                # Loss, in _losses.pxd
    double loss_param       # HUBER's delta; softmax CROSS_ENTROPY's label smoothing
    # (n_out,) the loss' weights per output, or NULL: softmax CROSS_ENTROPY's class weights w,
    # sigmoid CROSS_ENTROPY's pos_weight (owned by the Engine)
    double* loss_weight
    double l2
    # J = loss_scale sum_i s_i L_i / S + (l2/2) sum ||W||^2, divided by S too if l2_per_sample,
    # where S = sum_i s_i (N without sample weights), or with class weights sum_i s_i r_i,
    # r_i = sum_k w_k y_ik (torch's normalizer, w_{y_i} for one-hot rows). fastnn's own objective
    # has loss_scale 1 and no l2_per_sample; scikit-learn's has 1/2 for squared error and
    # l2_per_sample.
    double loss_scale
    bint l2_per_sample
    bint watch              # stop a single long pass at SIGINT (see fastnn/_interrupt.h)
    uint64_t key            # the dropout generator's stream
    uint64_t counter        # random numbers drawn so far by training passes


cdef enum UpdateKind:
    SGD = 0                 # state: the momentum buffer
    ADAM = 1                # state: the first and second moments
    ADAMW = 2               # Adam with decoupled weight decay; state as ADAM
    RMSPROP = 3             # state: square_avg, the momentum buffer, grad_avg


cdef enum:
    MAX_STATE = 3           # the most state vectors an update rule has


cdef enum ScheduleKind:
    NO_SCHEDULE = 0
    STEP_LR = 1             # torch's StepLR: lr *= gamma every step_size steps
    EXPONENTIAL_LR = 2      # torch's ExponentialLR: lr *= gamma every step
    WARMUP_COSINE = 3       # torch's SequentialLR of LinearLR (warmup) and CosineAnnealingLR


cdef struct Schedule:
    # a learning-rate schedule's state, advanced by _schedules.pxd (torch.optim.lr_scheduler's
    # recurrences): in the rule so that a compiled epoch can step it after every batch
    int kind                # ScheduleKind
    long long last_epoch    # steps taken since it was bound (torch's last_epoch)
    double base_lr          # the rule's lr when it was bound (torch's initial_lr)
    double last_lr          # the lr its last step set (torch's get_last_lr())
    double gamma            # STEP_LR, EXPONENTIAL_LR: the decay factor
    long long step_size     # STEP_LR: steps between two decays
    long long warmup        # WARMUP_COSINE: the linear warm-up's steps (0: none)
    long long T_max         # WARMUP_COSINE: the cosine's half period, in steps after the warm-up
    double start_factor     # WARMUP_COSINE: the warm-up's first factor on base_lr
    double eta_min          # WARMUP_COSINE: the cosine's least lr


cdef struct Rule:
    int kind                # UpdateKind
    double lr, momentum, beta1, beta2, eps
    double weight_decay     # torch.optim's: weight_decay * p added to every parameter's gradient
    double alpha            # RMSprop's smoothing constant
    bint centered           # RMSprop's: normalized by an estimate of the gradient's variance
    bint nesterov
    bint eps_hat            # Adam's eps added before the bias correction (Keras, scikit-learn)
    long long t             # updates done so far
    Schedule schedule       # the schedule bound to lr (kind NO_SCHEDULE: none)
