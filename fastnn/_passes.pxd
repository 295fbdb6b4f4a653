# Design: the passes of a network over its Plan (fastnn/_plan.pxd): forward, loss, backward, an
# optimizer update (after an optional clipping of the gradient's norm), a training step, and an
# epoch of minibatches (which may step the rule's learning-rate schedule after every batch). They
# are fused-type functions that run without the GIL over raw pointers: P the flat parameters, B
# the flat buffers (running statistics), G the flat gradient, `work` the workspace laid out for
# the plan. Each loop over the plan dispatches on the layer's kind to its kernel pair; an unknown
# kind cannot be built (the Engine refuses it), and an unknown update rule is refused before a
# pass starts.
from cython cimport floating
from libc.math cimport isfinite
from libc.stdint cimport uint64_t
from libc.string cimport memcpy

from fastnn._plan cimport (ACTIVATION, ADAM, ADAMW, BATCH_NORM, DENSE, DROPOUT, NO_SCHEDULE,
                           RMSPROP, SGD, Layer, Plan, Rule)
from fastnn._activations cimport (SOFTMAX, activation_backward, activation_backward_input,
                                  activation_forward, needs_input)
from fastnn._blas_threads cimport set_alone
from fastnn._batchnorm cimport (batchnorm_forward, batchnorm_inference, batchnorm_running,
                                batchnorm_backward)
from fastnn._dense cimport copy_row, dense_forward, dense_backward, dense_backward_descend
from fastnn._dropout cimport dropout_forward, dropout_backward
from fastnn._losses cimport CROSS_ENTROPY, loss_forward, loss_backward
from fastnn._schedules cimport schedule_step
from fastnn._updates cimport (clip_grad_norm, sgd_update, adam_update, rmsprop_update,
                              sum_squares)

cdef extern from "_interrupt.h" nogil:
    # raised by fastnn's SIGINT handler (see the header); read between batches
    volatile int fastnn_interrupted


cdef enum StepStatus:
    STEP_DONE = 0           # the update was made (or the batch's weights were all zero: no update)
    STEP_LOSS = 1           # J was not finite: nothing changed
    STEP_PARAMS = 2         # the update made a parameter non-finite: it was undone
    STEP_INTERRUPTED = 3    # SIGINT arrived during the pass (p.watch): nothing changed


cdef enum EpochStatus:
    EPOCH_DONE = 0
    EPOCH_DIVERGED = 1      # a step did not return STEP_DONE; the batches before it are done
    EPOCH_INTERRUPTED = 2   # SIGINT arrived; the batches before are done, the rest are not


cdef inline floating* layer_input(Plan* p, floating* work, floating* X,
                                  Py_ssize_t k) noexcept nogil:
    """Where layer k reads its input: X for the first layer, the previous layer's output after."""
    return X if k == 0 else work + p.layers[k - 1].out


cdef inline floating* head_output(Plan* p, floating* work) noexcept nogil:
    """The network's output (rows, n_out) after a forward pass."""
    return work + p.layers[p.n_layers - 1].out


cdef inline void forward_pass(Plan* p, floating* P, floating* B, floating* work,
                              floating* X,             # IN (N, n_in)
                              Py_ssize_t N, bint training, uint64_t counter) noexcept nogil:
    """Run the plan on X into the workspace; in training, with batch statistics and dropout
    masks drawn from the generator's numbers counter, counter + 1, ... With p.watch, a SIGINT
    stops it between layers, the workspace then incomplete."""
    cdef Py_ssize_t k, i, n
    cdef Layer* L
    cdef floating* A
    cdef floating* out
    cdef floating* gamma
    for k in range(p.n_layers):
        if p.watch and fastnn_interrupted:
            return
        L = &p.layers[k]
        A = layer_input(p, work, X, k)
        out = work + L.out
        n = L.n_out
        if L.kind == DENSE:
            dense_forward(out, A, P + L.p_off, P + L.p_off + L.n_in * n if L.affine else NULL, N,
                          L.n_in, n)
        elif L.kind == ACTIVATION:
            activation_forward(out, A, N, n, L.act, <floating>L.alpha)
        elif L.kind == DROPOUT:
            if training and L.alpha > 0:
                dropout_forward(out, work + L.saved, A, N * n, L.alpha, p.key, counter)
                counter += <uint64_t>(N * n)
            elif out != A:
                for i in range(N * n):
                    out[i] = A[i]
        elif L.kind == BATCH_NORM:
            gamma = P + L.p_off if L.affine else NULL
            if training:
                # saved: mean (n), variance (n), 1/std (n), xhat (rows, n)
                batchnorm_forward(out, work + L.saved + 3 * n, work + L.saved, work + L.saved + n,
                                  work + L.saved + 2 * n, A, gamma, gamma + n if L.affine else NULL,
                                  N, n, L.eps)
            else:
                batchnorm_inference(out, A, gamma, gamma + n if L.affine else NULL,
                                    B + L.buf_off, B + L.buf_off + n, N, n, L.eps)


cdef inline void commit_statistics(Plan* p, floating* B, floating* work,
                                   Py_ssize_t N) noexcept nogil:
    """Move every batch normalization's running statistics by the last training forward pass."""
    cdef Py_ssize_t k
    cdef Layer* L
    if p.n_buffers == 0:
        return
    for k in range(p.n_layers):
        L = &p.layers[k]
        if L.kind == BATCH_NORM:
            batchnorm_running(B + L.buf_off, B + L.buf_off + L.n_out, work + L.saved,
                              work + L.saved + L.n_out, N, L.n_out, L.alpha)


cdef inline double penalty(Plan* p, floating* P) noexcept nogil:
    """(l2 / 2) sum ||W||^2 over the dense layers' weights."""
    cdef Py_ssize_t k
    cdef double total = 0
    if p.l2 == 0:
        return 0
    for k in range(p.n_layers):
        if p.layers[k].kind == DENSE:
            total += sum_squares(P + p.layers[k].p_off, p.layers[k].n_in * p.layers[k].n_out)
    return 0.5 * p.l2 * total


cdef inline double forward_loss(Plan* p, floating* P, floating* B, floating* work, floating* X,
                                floating* Y, floating* s, Py_ssize_t N, bint training,
                                uint64_t counter) noexcept nogil:
    """sum_i s_i L_i over the N rows of X (N, n_in), Y (N, n_out) and s (N,) or NULL.

    Leaves the forward pass in work.
    """
    cdef Layer* head = &p.layers[p.n_layers - 1]
    forward_pass(p, P, B, work, X, N, training, counter)
    return loss_forward(layer_input(p, work, X, p.n_layers - 1), work + head.out, Y, s,
                        p.loss_weight, N, p.n_out, head.act, p.loss, p.loss_param)


cdef inline double weight_sum(floating* s, Py_ssize_t N) noexcept nogil:
    """S = sum_i s_i, or N when s is NULL."""
    cdef Py_ssize_t i
    cdef double total = 0
    if s == NULL:
        return N
    for i in range(N):
        total += s[i]
    return total


cdef inline double normalizer(Plan* p,
                              floating* Y,     # IN (N, n_out) targets
                              floating* s,     # IN (N,) sample weights, or NULL
                              Py_ssize_t N) noexcept nogil:
    """S, what the objective divides sum_i s_i L_i by: sum_i s_i r_i with the row weights
    r_i = sum_k w_k y_ik under softmax cross-entropy's class weights w (torch's normalizer), else
    weight_sum(s, N)."""
    cdef Py_ssize_t i, k, M = p.n_out
    cdef double total = 0, row
    if (p.loss_weight == NULL or p.loss != CROSS_ENTROPY
            or p.layers[p.n_layers - 1].act != SOFTMAX):
        return weight_sum(s, N)
    for i in range(N):
        row = 0
        for k in range(M):
            row += p.loss_weight[k] * Y[i * M + k]
        total += row if s == NULL else s[i] * row
    return total


cdef inline double objective(Plan* p, floating* P, double weighted_loss, double S) noexcept nogil:
    """J from sum_i s_i L_i and S (see normalizer)."""
    return p.loss_scale * weighted_loss / S + penalty(p, P) / (S if p.l2_per_sample else 1)


cdef extern from "_finite.h" nogil:
    bint fastnn_finite_double(const double* x, Py_ssize_t n)
    bint fastnn_finite_float(const float* x, Py_ssize_t n)


cdef inline bint finite(floating* x, Py_ssize_t n) noexcept nogil:
    """Whether no element of x (n,) is NaN or infinite (one vectorized pass)."""
    if floating is float:
        return fastnn_finite_float(x, n)
    else:
        return fastnn_finite_double(x, n)


cdef inline void add_penalty_gradient(Plan* p, floating* P,
                                      floating* G,     # INOUT (n_params,)
                                      floating decay,
                                      Py_ssize_t lo, Py_ssize_t hi) noexcept nogil:
    """G += decay W for every dense layer's weights W (the penalty's gradient; biases have none),
    on the parameters lo..hi - 1 only."""
    cdef Py_ssize_t k, i
    cdef Layer* L
    for k in range(p.n_layers):
        L = &p.layers[k]
        if L.kind == DENSE:
            for i in range(max(lo, L.p_off), min(hi, L.p_off + L.n_in * L.n_out)):
                G[i] = G[i] + decay * P[i]


cdef inline void backward_pass(Plan* p, floating* P, floating* G, floating* work,
                               floating* X,            # IN (N, n_in)
                               floating* Y,            # IN (N, n_out)
                               floating* s,            # IN (N,) sample weights, or NULL
                               Py_ssize_t N, double S, double descend,
                               floating* backup,       # OUT (n_params,) or NULL
                               bint* intact) noexcept nogil:
    """G = dJ/dP (see Plan for J; S from normalizer), after a training forward_pass on X.

    With descend > 0, take the plain gradient-descent step P -= descend * dJ/dP instead, layer by
    layer as the gradient is found (G is then scratch); with a backup, each layer's parameters
    are copied there just before its step and checked just after (while they are in cache),
    intact[0] becoming False if one is NaN or infinite. Without descend, p.watch lets a SIGINT
    stop the pass between layers (G then incomplete; P is never changed).
    """
    cdef Py_ssize_t k, i, n
    cdef Layer* L
    cdef Layer* head = &p.layers[p.n_layers - 1]
    cdef floating* D = work + p.d_off[0]
    cdef floating* D_prev = work + p.d_off[1]
    cdef floating* swap
    cdef floating* gamma
    cdef bint input_gradient
    cdef floating decay = <floating>(p.l2 / S if p.l2_per_sample else p.l2)
    loss_backward(D, work + head.out, Y, s, p.loss_weight, N, p.n_out, head.act, p.loss,
                  <floating>(p.loss_scale / S), p.loss_param)
    for k in range(p.n_layers - 2, p.first_param - 1, -1):
        if descend <= 0 and p.watch and fastnn_interrupted:
            return
        L = &p.layers[k]
        n = L.n_out
        input_gradient = k > p.first_param
        if L.kind == DENSE:
            if descend > 0:
                if backup != NULL:
                    memcpy(backup + L.p_off, P + L.p_off, L.n_p * sizeof(floating))
                dense_backward_descend(D_prev if input_gradient else NULL, P + L.p_off,
                                       P + L.p_off + L.n_in * n if L.affine else NULL, D,
                                       layer_input(p, work, X, k), N, L.n_in, n,
                                       <floating>descend, decay)
                if backup != NULL:
                    intact[0] = intact[0] and finite(P + L.p_off, L.n_p)
            else:
                dense_backward(D_prev if input_gradient else NULL, G + L.p_off,
                               G + L.p_off + L.n_in * n if L.affine else NULL, D,
                               layer_input(p, work, X, k), P + L.p_off, N, L.n_in, n, decay)
            swap = D
            D = D_prev
            D_prev = swap
        elif L.kind == ACTIVATION:
            if needs_input(L.act):
                activation_backward_input(D, layer_input(p, work, X, k), N, n, L.act,
                                          <floating>L.alpha)
            else:
                activation_backward(D, work + L.out, N, n, L.act, <floating>L.alpha)
        elif L.kind == DROPOUT:
            if L.alpha > 0:
                dropout_backward(D, work + L.saved, N * n)
        elif L.kind == BATCH_NORM:
            gamma = P + L.p_off if L.affine else NULL
            batchnorm_backward(D, G + L.p_off if L.affine else NULL,
                               G + L.p_off + n if L.affine else NULL, work + p.scratch,
                               work + L.saved + 3 * n, work + L.saved + 2 * n, gamma, N, n,
                               input_gradient)
            if descend > 0 and L.affine:
                if backup != NULL:
                    memcpy(backup + L.p_off, P + L.p_off, L.n_p * sizeof(floating))
                for i in range(L.p_off, L.p_off + 2 * n):
                    P[i] = P[i] - <floating>descend * G[i]
                if backup != NULL:
                    intact[0] = intact[0] and finite(P + L.p_off, L.n_p)


cdef inline bint known_rule(int kind) noexcept nogil:
    """Whether `update` has a branch for this kind of rule."""
    return kind == SGD or kind == ADAM or kind == ADAMW or kind == RMSPROP


cdef inline Py_ssize_t state_count(int kind) noexcept nogil:
    """How many state vectors a rule of this kind keeps (see STATE_VECTORS in _rules.pyx)."""
    if kind == RMSPROP:
        return 3
    return 2 if kind == ADAM or kind == ADAMW else 1


cdef inline Py_ssize_t states_updated(Rule* r) noexcept nogil:
    """How many of its state vectors, from the first, the rule's update changes (plain SGD: none;
    RMSprop: square_avg, then the momentum buffer if momentum > 0, then grad_avg if centered)."""
    if r.kind == RMSPROP:
        return 3 if r.centered else (2 if r.momentum > 0 else 1)
    return 0 if r.kind == SGD and r.momentum == 0 else state_count(r.kind)


cdef inline void update(Plan* p, Rule* r, floating* P, floating* G,
                        floating** state) noexcept nogil:
    """One optimizer update of P from the gradient G; state holds the rule's state vectors.

    The rule's kind is known (Engine checks known_rule before any pass).
    """
    r.t += 1
    update_range(r, P, G, state, 0, p.n_params)


cdef inline void update_range(Rule* r, floating* P, floating* G, floating** state,
                              Py_ssize_t lo, Py_ssize_t hi) noexcept nogil:
    """update's step of the parameters lo..hi - 1 (r.t counts the update already): each
    parameter's arithmetic is its own, so ranges updated apart, on any thread, give update's
    bits."""
    cdef Py_ssize_t n = hi - lo
    if r.kind == SGD:
        sgd_update(P + lo, G + lo, state[0] + lo, n, r.lr, r.momentum, r.nesterov, r.weight_decay)
    elif r.kind == ADAM or r.kind == ADAMW:
        adam_update(P + lo, G + lo, state[0] + lo, state[1] + lo, n, r.lr, r.beta1, r.beta2,
                    r.eps, r.t, r.eps_hat, r.weight_decay, r.kind == ADAMW)
    elif r.kind == RMSPROP:
        rmsprop_update(P + lo, G + lo, state[0] + lo, state[1] + lo, state[2] + lo, n, r.lr,
                       r.alpha, r.eps, r.momentum, r.centered, r.weight_decay)


cdef inline int train_step(Plan* p, Rule* r, floating* P, floating* B, floating* G,
                           floating** state, floating* work, floating* X, floating* Y,
                           floating* s, Py_ssize_t N,
                           floating* backup,    # SCRATCH ((1 + states) n_params + n_buffers,)
                                                # or NULL
                           double max_norm,     # clip the gradient's norm to it; 0: no clipping
                           double* J,           # OUT the objective on the batch
                           double* norm) noexcept nogil:  # OUT its normalizer S
    """J on the batch (X, Y, s) of N rows, then one update (a StepStatus), of the gradient clipped
    to the norm max_norm if it is > 0 (torch's clip_grad_norm_; the grad vector G keeps it).

    Nothing changes when J is not finite. With a backup, the update is checked: if it leaves a
    parameter, a value of the rule's state or a running statistic NaN or infinite, all of them
    are put back as they were. Only a completed update moves the running statistics and the
    dropout generator's counter. A batch whose sample weights are all zero carries no
    information (nor does one whose rows all have class weight 0): J = 0, no update.
    """
    cdef double S = normalizer(p, Y, s, N)
    norm[0] = S
    cdef Py_ssize_t i, n = p.n_params, n_state = states_updated(r)
    # the fused step knows fastnn's l2 on the weights, not torch's weight decay on every parameter,
    # and steps each layer before the whole gradient, whose norm clipping needs, is known
    cdef bint descend = (r.kind == SGD and r.momentum == 0 and r.lr > 0 and r.weight_decay == 0
                         and max_norm <= 0)
    cdef bint intact = True
    J[0] = 0
    if S == 0:
        return STEP_DONE
    J[0] = objective(p, P, forward_loss(p, P, B, work, X, Y, s, N, True, p.counter), S)
    if p.watch and fastnn_interrupted:
        return STEP_INTERRUPTED
    if not isfinite(J[0]):
        return STEP_LOSS
    if backup != NULL:
        if not descend:
            memcpy(backup, P, n * sizeof(floating))
        for i in range(n_state):
            memcpy(backup + (i + 1) * n, state[i], n * sizeof(floating))
        memcpy(backup + (n_state + 1) * n, B, p.n_buffers * sizeof(floating))
    if descend:
        # plain gradient descent needs no stored gradient: step inside the backward pass, which
        # copies and checks each layer's parameters around its step
        r.t += 1
        backward_pass(p, P, G, work, X, Y, s, N, S, r.lr, backup, &intact)
    else:
        backward_pass(p, P, G, work, X, Y, s, N, S, 0, NULL, &intact)
        if p.watch and fastnn_interrupted:
            return STEP_INTERRUPTED
        if max_norm > 0:
            clip_grad_norm(G, n, max_norm)
        update(p, r, P, G, state)
        if backup != NULL:
            intact = finite(P, n)
    commit_statistics(p, B, work, N)
    if backup != NULL:
        intact = intact and finite(B, p.n_buffers)
        for i in range(n_state):
            intact = intact and finite(state[i], n)
        if not intact:
            memcpy(P, backup, n * sizeof(floating))
            for i in range(n_state):
                memcpy(state[i], backup + (i + 1) * n, n * sizeof(floating))
            memcpy(B, backup + (n_state + 1) * n, p.n_buffers * sizeof(floating))
            r.t -= 1
            return STEP_PARAMS
    p.counter += <uint64_t>(N * p.n_random)
    return STEP_DONE


# ---- row-split steps: a batch's rows between the engine's thread and a worker thread -------

cdef extern from "_worker.h" nogil:
    ctypedef struct fastnn_worker:
        pass
    ctypedef void (*fastnn_task)(void* arg) noexcept nogil
    bint fastnn_worker_post(fastnn_worker* w, fastnn_task task, void* arg)
    void fastnn_worker_finish(fastnn_worker* w)
    long long fastnn_now_ns()
    int fastnn_others_runnable(bint mine_only, long worker)
    long fastnn_worker_tid(fastnn_worker* w)
    int fastnn_usable_cpus()


cdef enum:
    # a worker whose halves stopped paying is tried again after this many batches, twice as many
    # after each try that did not pay either (a busy neighbour that stays), up to SPLIT_PAUSE_MAX;
    # SPLIT_PAID parallel steps in a row that pay bring the pause back to SPLIT_PROBE_AFTER
    SPLIT_PROBE_AFTER = 64
    SPLIT_PAUSE_MAX = 4096
    SPLIT_PAID = 16
    # split steps on one thread timed before the worker takes halves (the first is not counted)
    SPLIT_REFERENCE = 4


cdef struct Split:
    fastnn_worker* worker   # the engine's second thread
    bint is_double          # the specialization the worker runs
    Plan* p
    void* P
    void* B
    void* work              # the worker's workspace, laid out as the engine's
    void* sums              # (2, n_params + 2): the engine thread's shard_sums, the worker's
    void* X                 # the epoch's inputs (N, n_in), whose rows order[first], ... the
    Py_ssize_t* order       # worker gathers into its workspace (order NULL: rows first, ...)
    Py_ssize_t first
    void* Y                 # the worker's rows of the batch: Y (rows, n_out), s (rows,) or
    void* s                 # NULL, gathered by the engine's thread (S needs them all)
    Py_ssize_t rows
    double S                # the whole batch's normalizer, which both halves' gradients divide by
    # the update, in two ranges of parameters: 0..cut - 1 on the engine's thread, cut.. on the
    # worker's (or after, on the engine's)
    Rule* r
    void** state
    Py_ssize_t cut
    double decay            # the penalty gradient's factor
    # adaptive: the worker takes halves while split steps in parallel take less time than on
    # one thread (a preempted worker, beside a busy process, makes the engine's thread wait)
    double split_ns         # moving average of parallel steps' nanoseconds (0: none since a probe)
    double single_ns        # the same of steps on one thread (0: none measured yet)
    Py_ssize_t singles      # steps on one thread timed (the first, which warms the caches, is not)
    Py_ssize_t skip         # batches left on one thread before the worker is tried again
    Py_ssize_t pause        # the skip after the next parallel steps that do not pay
    Py_ssize_t paid         # parallel steps judged since the last try began
    Py_ssize_t steps        # split steps made (Engine.split_steps), in parallel or not
    Py_ssize_t parallel_total   # of them, those whose second half the worker was posted
    # the BLAS's own threads, in an epoch whose products are large enough for `enter` to give
    # them hi >= 2 BLAS threads: such an epoch does not split its rows (halves False) but runs
    # its steps on one BLAS thread or on hi, choosing by timing as the split chooses its worker
    # (1 and hi BLAS threads give the same bits), and never tries hi while the machine's other
    # cores look busy (a BLAS thread that a busy process preempts makes every product wait for
    # it: 10x slower)
    bint halves             # the steps split their rows (split_step); otherwise train_step
    Py_ssize_t batch        # the batch rows the timings are of (other rows: timed anew)
    int hi                  # the BLAS threads `enter` gave the epoch (< 2: never tried)
    bint blas               # the steps run on hi BLAS threads now
    double blas_ns          # moving average of their nanoseconds (0: none since the last try)
    Py_ssize_t blas_steps   # steps on hi threads since the last try began
    Py_ssize_t blas_skip    # batches left before the BLAS's threads are tried again
    Py_ssize_t blas_pause   # the skip after the next try that does not pay
    Py_ssize_t blas_total   # full batches' steps made on hi threads (Engine.split_state)


cdef inline bint cores_look_idle(int threads, Split* split) noexcept nogil:
    """Whether the process's CPUs can hold this many threads of its own besides what else is
    runnable now (fastnn_others_runnable in _worker.h): for a row split (split.halves), any
    thread but this one and the worker, the BLAS's spinning ones too; for the BLAS's threads,
    other processes' threads. True where that cannot be read."""
    cdef int others = fastnn_others_runnable(split.halves, fastnn_worker_tid(split.worker))
    return others < 0 or others + threads <= fastnn_usable_cpus()


cdef inline bint in_parallel(Split* split) noexcept nogil:
    """Whether the worker may take the next split step's second half: not before steps on one
    thread were timed, nor during the pause after steps in parallel that did not pay, nor, at the
    start of a try, while other processes keep the cores busy (the pause then grows as if the try
    had not paid; at its longest, the try is made and timed whatever the cores look like)."""
    if split.singles < SPLIT_REFERENCE:
        return False
    if split.skip > 0:
        split.skip -= 1
        return False
    if (split.split_ns == 0 and split.paid == 0 and split.pause < SPLIT_PAUSE_MAX
            and not cores_look_idle(2, split)):
        split.skip = split.pause
        split.pause = min(2 * split.pause, SPLIT_PAUSE_MAX)
        return False
    return True


cdef inline void judge_split(Split* split, bint parallel, bint woken,
                             long long ns) noexcept nogil:
    """Account a full batch's split step of `ns` nanoseconds, in parallel or not; when steps in
    parallel are slower on average than on one thread, keep the worker out for
    split.pause batches (see SPLIT_PROBE_AFTER). A step whose worker was woken from its sleep (at
    the start of a call, after a pause) is not counted, and each step counts at most twice the
    average of steps on one thread, so that one hiccup does not decide."""
    cdef double t = <double>ns
    if not parallel:
        split.singles += 1
        if split.singles > 1 and split.single_ns == 0:
            split.single_ns = t
        elif split.singles > 1:
            # at most twice the average as well: a preempted step must not make slow parallel
            # steps look as if they paid
            split.single_ns += (min(t, 2 * split.single_ns) - split.single_ns) / 8
        return
    if woken:
        return
    t = min(t, 2 * split.single_ns)
    split.split_ns = t if split.split_ns == 0 else split.split_ns + (t - split.split_ns) / 8
    split.paid += 1
    if split.split_ns > split.single_ns:
        split.skip = split.pause
        split.pause = min(2 * split.pause, SPLIT_PAUSE_MAX)
        split.split_ns = 0
        split.paid = 0
    elif split.paid == SPLIT_PAID:
        split.pause = SPLIT_PROBE_AFTER


cdef inline void choose_blas(Split* split) noexcept nogil:
    """Before a full batch of an epoch that does not split its rows: try the BLAS's hi threads for
    the next steps, once steps on one thread were timed and no pause is under way, if the cores
    look idle (otherwise the pause grows as if the try had not paid) and no other fastnn call
    runs."""
    if split.hi < 2 or split.blas or split.singles < SPLIT_REFERENCE:
        return
    if split.blas_skip > 0:
        split.blas_skip -= 1
        return
    if not cores_look_idle(split.hi, split) or set_alone(split.hi) != split.hi:
        split.blas_skip = split.blas_pause
        split.blas_pause = min(2 * split.blas_pause, SPLIT_PAUSE_MAX)
        return
    split.blas = True
    split.blas_ns = 0
    split.blas_steps = 0


cdef inline void judge_blas(Split* split, long long ns) noexcept nogil:
    """Account a full batch's step of `ns` nanoseconds on the BLAS's hi threads: back to one
    BLAS thread for split.blas_pause batches when these steps are slower on average than steps on
    one thread, or when one step takes twice their average (a busy process arrived: each further
    step would cost ~10x), or another fastnn call began (and set one thread); the first step of a
    try, which wakes the BLAS's threads, is not counted."""
    cdef double t = <double>ns
    cdef bint jump
    split.blas_steps += 1
    split.blas_total += 1
    if split.blas_steps == 1:
        return
    jump = split.blas_ns > 0 and t > 2 * split.blas_ns
    t = min(t, 2 * split.single_ns)
    split.blas_ns = t if split.blas_ns == 0 else split.blas_ns + (t - split.blas_ns) / 8
    if jump or split.blas_ns > split.single_ns or set_alone(split.hi) != split.hi:
        set_alone(1)
        split.blas = False
        split.blas_skip = split.blas_pause
        split.blas_pause = min(2 * split.blas_pause, SPLIT_PAUSE_MAX)
    elif split.blas_steps == SPLIT_PAID:
        split.blas_pause = SPLIT_PROBE_AFTER


cdef inline void shard_task(void* arg) noexcept nogil:
    """The worker's half: its rows' inputs gathered into its workspace, then shard_sums into the
    second row of split.sums."""
    cdef Split* split = <Split*>arg
    if split.is_double:
        shard_half(split, <double*>split.work)
    else:
        shard_half(split, <float*>split.work)


cdef inline void shard_half(Split* split, floating* work) noexcept nogil:
    """shard_task's work, on the worker's workspace (split.work)."""
    cdef floating* xb = gather_inputs(split.p, work, <floating*>split.X, split.order, split.first,
                                      split.rows)
    shard_sums(split.p, <floating*>split.P, <floating*>split.B, work, xb, <floating*>split.Y,
               <floating*>split.s, split.rows, split.S,
               <floating*>split.sums + split.p.n_params + 2)


cdef inline void sum_and_update(Split* split, floating* P, Py_ssize_t lo,
                                Py_ssize_t hi) noexcept nogil:
    """The split step's update of the parameters lo..hi - 1: the halves' gradients summed into
    the first row of split.sums, the penalty's gradient added, the rule's step."""
    cdef Py_ssize_t i
    cdef floating* G = <floating*>split.sums
    cdef floating* theirs = G + split.p.n_params + 2
    for i in range(lo, hi):
        G[i] = G[i] + theirs[i]
    if split.decay != 0:
        add_penalty_gradient(split.p, P, G, <floating>split.decay, lo, hi)
    update_range(split.r, P, G, <floating**>split.state, lo, hi)


cdef inline void update_task(void* arg) noexcept nogil:
    """The worker's part of a split step's update: the parameters from split.cut on."""
    cdef Split* split = <Split*>arg
    if split.is_double:
        sum_and_update[double](split, <double*>split.P, split.cut, split.p.n_params)
    else:
        sum_and_update[float](split, <float*>split.P, split.cut, split.p.n_params)


cdef inline int split_step(Plan* p, Rule* r, floating* P, floating* B, floating** state,
                           floating* work,
                           floating* X,         # IN (epoch rows, n_in)
                           floating* Y,         # IN (epoch rows, n_out)
                           floating* s,         # IN (epoch rows,) sample weights, or NULL
                           Py_ssize_t* order,   # IN (epoch rows,) row order, or NULL
                           Py_ssize_t start,    # the batch: the rows order[start], ...
                           Py_ssize_t N, double max_norm, double* J, double* norm,
                           Split* split,
                           bint parallel,       # the worker may take the second half
                           bint* woken) noexcept nogil:   # OUT whether the worker was asleep
    """train_step's update (a StepStatus) on the batch of N >= 2 rows from order[start] (as
    gather_batch gathers it; each half's inputs are gathered by the thread that computes it),
    their gradient summed from two halves:
    the first N // 2 rows' shard_sums, and the other rows' with the worker's workspace (on the
    worker thread meanwhile when parallel, unless it has not begun by the time this thread is
    done with the first half), both divided by the whole batch's S as train_step's gradient is;
    then the update, without clipping in two ranges of parameters (the second on the worker when
    parallel), with clipping (which needs the whole gradient's norm) by reduced_step on the
    sum. Equal to train_step up to rounding
    (the sums are added in another order), and the same bit for bit whichever thread computes
    the second half, so a fit's result does not depend on timing; no backup (run_epoch's steps
    are not checked), and only for plans without batch normalization or dropout, whose batch
    statistics and masks are the whole batch's.
    """
    cdef Py_ssize_t i, h = N // 2, n = p.n_params + 2
    cdef floating* mine = <floating*>split.sums
    cdef floating* theirs = mine + n
    cdef floating* xb
    cdef floating* yb
    cdef floating* sb
    gather_targets(p, work, Y, s, order, start, N, &yb, &sb)
    cdef double S = normalizer(p, yb, sb, N)
    norm[0] = S
    J[0] = 0
    woken[0] = False
    if S == 0:
        return STEP_DONE
    split.S = S
    split.X = X
    split.order = order
    split.first = start + h
    split.Y = yb + h * p.n_out
    split.s = sb + h if sb != NULL else NULL
    split.rows = N - h
    split.steps += 1
    split.parallel_total += parallel
    woken[0] = parallel and fastnn_worker_post(split.worker, shard_task, split)
    xb = gather_inputs(p, work, X, order, start, h)
    shard_sums(p, P, B, work, xb, yb, sb, h, S, mine)
    if parallel:
        fastnn_worker_finish(split.worker)
    else:
        # this thread's workspace, free again and in cache (where the workspace is does not
        # change the arithmetic)
        xb = gather_inputs(p, work, X, order, start + h, N - h)
        shard_sums(p, P, B, work, xb, yb + h * p.n_out, sb + h if sb != NULL else NULL, N - h, S,
                   theirs)
    if max_norm > 0:
        for i in range(n - 1):
            mine[i] = mine[i] + theirs[i]
        mine[n - 1] = <floating>S
        return reduced_step(p, r, P, mine, state, max_norm, J, norm, True)
    J[0] = objective(p, P, mine[n - 2] + theirs[n - 2], S)
    if not isfinite(J[0]):
        return STEP_LOSS
    r.t += 1
    split.r = r
    split.state = <void**>state
    split.decay = p.l2 / S if p.l2_per_sample else p.l2
    # the worker's range starts on a cache line (either way the arithmetic is each parameter's)
    split.cut = (p.n_params // 2) & ~<Py_ssize_t>7
    if parallel:
        fastnn_worker_post(split.worker, update_task, split)
    sum_and_update(split, P, 0, split.cut)
    if parallel:
        fastnn_worker_finish(split.worker)
    else:
        sum_and_update(split, P, split.cut, p.n_params)
    return STEP_DONE


cdef inline void gather_batch(Plan* p, floating* work,
                              floating* X,          # IN (N, n_in)
                              floating* Y,          # IN (N, n_out)
                              floating* s,          # IN (N,) sample weights, or NULL
                              Py_ssize_t* order,    # IN (N,) row order, or NULL for 0..N-1
                              Py_ssize_t start, Py_ssize_t rows,
                              floating** xb,        # OUT (rows, n_in)
                              floating** yb,        # OUT (rows, n_out)
                              floating** sb) noexcept nogil:   # OUT (rows,) or NULL
    """Point xb, yb, sb at the batch of the rows order[start], ..., order[start + rows - 1]:
    gathered into the workspace, or, without an order, the rows start... of X, Y, s in place."""
    xb[0] = gather_inputs(p, work, X, order, start, rows)
    gather_targets(p, work, Y, s, order, start, rows, yb, sb)


cdef inline floating* gather_inputs(Plan* p, floating* work,
                                    floating* X,          # IN (N, n_in)
                                    Py_ssize_t* order,    # IN (N,) row order, or NULL
                                    Py_ssize_t start,
                                    Py_ssize_t rows) noexcept nogil:  # -> (rows, n_in)
    """gather_batch's xb alone: the inputs of the batch's rows (a row split's halves each
    gather their own, on the thread that computes them)."""
    cdef Py_ssize_t i, n_in = p.n_in
    cdef floating* xb = work + p.xb_off
    if order == NULL:
        return X + start * n_in
    for i in range(rows):
        copy_row(xb + i * n_in, X + order[start + i] * n_in, n_in)
    return xb


cdef inline void gather_targets(Plan* p, floating* work,
                                floating* Y,          # IN (N, n_out)
                                floating* s,          # IN (N,) sample weights, or NULL
                                Py_ssize_t* order,    # IN (N,) row order, or NULL
                                Py_ssize_t start, Py_ssize_t rows,
                                floating** yb,        # OUT (rows, n_out)
                                floating** sb) noexcept nogil:   # OUT (rows,) or NULL
    """gather_batch's yb and sb alone."""
    cdef Py_ssize_t i, row, n_out = p.n_out
    if order == NULL:
        yb[0] = Y + start * n_out
        sb[0] = s + start if s != NULL else NULL
        return
    yb[0] = work + p.yb_off
    sb[0] = work + p.sb_off if s != NULL else NULL
    for i in range(rows):
        row = order[start + i]
        copy_row(yb[0] + i * n_out, Y + row * n_out, n_out)
        if s != NULL:
            sb[0][i] = s[row]


cdef inline int run_epoch(Plan* p, Rule* r, floating* P, floating* B, floating* G,
                          floating** state, floating* work,
                          floating* X,          # IN (N, n_in)
                          floating* Y,          # IN (N, n_out)
                          floating* s,          # IN (N,) sample weights, or NULL
                          Py_ssize_t N,
                          Py_ssize_t* order,    # IN (N,) row order, or NULL for 0..N-1
                          Py_ssize_t batch,
                          Py_ssize_t stop,      # the batch to stop before (at most all of them)
                          double max_norm,      # clip each gradient's norm to it; 0: no clipping
                          bint scheduled,       # step r.schedule after each batch
                          bint watch,           # stop between batches on SIGINT
                          Split* split,         # the row split or the BLAS threads' choice, or NULL
                          double* total, double* seen, Py_ssize_t* done) noexcept nogil:
    """Train on consecutive batches of `batch` rows (the last may be smaller), from batch done[0]
    up to batch stop (an EpochStatus).

    Adds J times the rows (with sample or class weights, the normalizer S) of each batch to
    total, and those rows (or S) to seen, and counts the batches done in done[0]; the epoch stops
    early at a step that did not complete (its batch made no update) or, when watching, at
    SIGINT, between batches or within one (p.watch: that batch is then not done and changed
    nothing). Running the batches in several calls, each from the done[0] the last left, gives
    what one call gives, bit for bit (a split step's result does not depend on which thread
    computes its halves: see split_step). When scheduled (and r has a schedule), each completed step
    is followed by a step of the schedule, which sets r.lr for the next batch, as a torch loop
    calls scheduler.step() after optimizer.step(): however the epoch ends, the schedule has taken
    one step per batch done.
    """
    cdef Py_ssize_t k, start, rows
    cdef floating* xb
    cdef floating* yb
    cdef floating* sb
    cdef double J, S
    cdef int status
    cdef bint parallel, woken = False
    cdef long long started = 0
    scheduled = scheduled and r.schedule.kind != NO_SCHEDULE
    for k in range(done[0], min(stop, (N + batch - 1) // batch)):
        if watch and fastnn_interrupted:
            return EPOCH_INTERRUPTED
        start = k * batch
        rows = min(batch, N - start)
        if split != NULL and split.halves and rows >= 2:
            parallel = in_parallel(split)
            started = fastnn_now_ns()
            status = split_step(p, r, P, B, state, work, X, Y, s, order, start, rows, max_norm,
                                &J, &S, split, parallel, &woken)
            # a weightless batch (S = 0) makes no update and takes no time: not a step to judge by
            if rows == batch and S != 0:
                judge_split(split, parallel, woken, fastnn_now_ns() - started)
        elif split != NULL and rows == batch:
            gather_batch(p, work, X, Y, s, order, start, rows, &xb, &yb, &sb)
            choose_blas(split)
            started = fastnn_now_ns()
            status = train_step(p, r, P, B, G, state, work, xb, yb, sb, rows, NULL, max_norm,
                                &J, &S)
            if split.blas and S != 0:
                judge_blas(split, fastnn_now_ns() - started)
            elif S != 0:
                judge_split(split, False, False, fastnn_now_ns() - started)
        else:
            gather_batch(p, work, X, Y, s, order, start, rows, &xb, &yb, &sb)
            status = train_step(p, r, P, B, G, state, work, xb, yb, sb, rows, NULL, max_norm,
                                &J, &S)
        if status == STEP_INTERRUPTED:
            return EPOCH_INTERRUPTED
        if status != STEP_DONE:
            return EPOCH_DIVERGED
        if scheduled:
            r.lr = schedule_step(&r.schedule, r.lr)
        total[0] += J * S
        seen[0] += S
        done[0] = k + 1
    return EPOCH_DONE


# ---- data-parallel steps: each process's shard of a global batch, then one update from the sums --

cdef inline void shard_sums(Plan* p, floating* P, floating* B, floating* work,
                            floating* X,         # IN (rows, n_in)
                            floating* Y,         # IN (rows, n_out)
                            floating* s,         # IN (rows,) sample weights, or NULL
                            Py_ssize_t rows,
                            double S,            # what the gradient is divided by
                            floating* out) noexcept nogil:  # OUT (n_params + 2,)
    """What a process adds to a global batch from its rows of it: out[:n_params] the gradient of
    loss_scale sum_i s_i L_i divided by S (1 where the global batch's normalizer is not known
    yet; a row split knows it) and without the penalty, out[n_params] the weighted loss
    sum_i s_i L_i, out[n_params + 1] its part of S (normalizer). Summed over the processes, these
    are what reduced_step takes. No rows: all zeros.

    The running statistics and the dropout generator are not moved (the plans data-parallel
    training takes have neither batch normalization nor dropout).
    """
    cdef Py_ssize_t i, n = p.n_params
    cdef Plan unpenalized = p[0]
    cdef bint intact
    if rows == 0:
        for i in range(n + 2):
            out[i] = 0
        return
    unpenalized.l2 = 0
    unpenalized.watch = False
    out[n + 1] = <floating>normalizer(p, Y, s, rows)
    out[n] = <floating>forward_loss(&unpenalized, P, B, work, X, Y, s, rows, True, p.counter)
    backward_pass(&unpenalized, P, out, work, X, Y, s, rows, S, 0, NULL, &intact)


cdef inline int reduced_step(Plan* p, Rule* r, floating* P,
                             floating* G,         # INOUT (n_params + 2,) shard_sums summed
                             floating** state,
                             double max_norm,     # clip the gradient's norm to it; 0: no clipping
                             double* J,           # OUT the objective on the global batch
                             double* norm,        # OUT its normalizer S
                             bint divided) noexcept nogil:  # shard_sums divided by S already
    """One update (a StepStatus) from the sums over the processes of their shard_sums on one
    global batch: train_step's, on the gradient of the whole batch, which G[:n_params] becomes
    (divided by S here unless the shards were).

    J is computed before the update, from the summed loss and S and the penalty of P; nothing
    changes when it is not finite. A batch whose S is 0 makes no update (J = 0), as train_step.
    """
    cdef Py_ssize_t i, n = p.n_params
    cdef double S = G[n + 1]
    cdef floating decay
    norm[0] = S
    J[0] = 0
    if S == 0:
        return STEP_DONE
    J[0] = objective(p, P, G[n], S)
    if not isfinite(J[0]):
        return STEP_LOSS
    if not divided:
        for i in range(n):
            G[i] = G[i] / <floating>S
    decay = <floating>(p.l2 / S if p.l2_per_sample else p.l2)
    if decay != 0:
        add_penalty_gradient(p, P, G, decay, 0, n)
    if max_norm > 0:
        clip_grad_norm(G, n, max_norm)
    update(p, r, P, G, state)
    return STEP_DONE
