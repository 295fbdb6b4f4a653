"""Type stubs of the compiled engine (fastnn/_engine.pyx)."""
from collections.abc import Sequence

import numpy as np

from fastnn._rules import UpdateRule

LAYER_CODES: dict[str, int]
ACTIVATION_CODES: dict[str, int]
LOSS_CODES: dict[str, int]
STEP_NONFINITE_LOSS: int
STEP_NONFINITE_PARAMS: int

class Engine:
    params: np.ndarray
    grad: np.ndarray
    buffers: np.ndarray
    random_state: tuple[int, int]
    n_threads: int
    def __init__(self, n_in: int, layers: Sequence[tuple[int, int, int, float, float, bool]],
                 loss: int, l2: float, dtype: np.dtype | type | str, loss_scale: float = ...,
                 l2_per_sample: bool = ..., loss_param: float = ...,
                 loss_weight: np.ndarray | Sequence[float] | None = ...) -> None: ...
    def layout(self) -> list[tuple[tuple[int, int], tuple[int, int]]]: ...
    def set_objective(self, l2: float, loss_scale: float, l2_per_sample: bool) -> None: ...
    def release(self) -> None: ...
    def forward(self, X: np.ndarray) -> np.ndarray: ...
    def loss(self, X: np.ndarray, Y: np.ndarray, s: np.ndarray | None = ...) -> float: ...
    def normalizer(self, Y: np.ndarray, s: np.ndarray | None = ...) -> float: ...
    def snapshot(self) -> tuple[np.ndarray, np.ndarray, tuple[int, int]]: ...
    def restore(self, params: np.ndarray, buffers: np.ndarray | None = ...,
                random_state: tuple[int, int] | None = ...) -> None: ...
    def gradients(self, X: np.ndarray, Y: np.ndarray,
                  s: np.ndarray | None = ...) -> tuple[float, np.ndarray]: ...
    def step(self, X: np.ndarray, Y: np.ndarray, s: np.ndarray | None, rule: UpdateRule,
             max_norm: float = ...) -> tuple[float, int]: ...
    def epoch(self, X: np.ndarray, Y: np.ndarray, s: np.ndarray | None, order: np.ndarray | None,
              batch_size: int, rule: UpdateRule, max_norm: float = ...,
              scheduled: bool = ..., start: int = ..., stop: int = ..., total: float = ...,
              seen: float = ...) -> tuple[float, float, int]: ...
