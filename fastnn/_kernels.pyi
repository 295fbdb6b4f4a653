"""Type stubs of the kernels' test entry points (fastnn/_kernels.pyx): each is a fused-type
function indexed by "float" or "double", e.g. ``_kernels.gemm["double"](...)``."""
from typing import Any

import numpy as np

gemm: Any
exp_array: Any
activation_forward: Any
activation_backward: Any
activation_backward_input: Any
dense_forward: Any
dense_backward: Any
dense_backward_descend: Any
loss_forward: Any
loss_backward: Any
sgd_update: Any
adam_update: Any
rmsprop_update: Any
clip_grad_norm: Any
dropout_forward: Any
dropout_backward: Any
batchnorm_forward: Any
batchnorm_running: Any
batchnorm_inference: Any
batchnorm_backward: Any

def uniform(key: int, counter: int, n: int) -> np.ndarray: ...
