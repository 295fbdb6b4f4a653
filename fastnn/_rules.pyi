"""Type stubs of the compiled update rules (fastnn/_rules.pyx)."""
from typing import Any

import numpy as np

UPDATE_CODES: dict[str, int]
STATE_VECTORS: dict[int, int]
SCHEDULE_CODES: dict[str, int]
LIVE: Any

class UpdateRule:
    states: tuple[np.ndarray, ...] | None
    kind: int
    t: int
    def __init__(self, kind: int, lr: float, momentum: float = ..., nesterov: bool = ...,
                 beta1: float = ..., beta2: float = ..., eps: float = ...,
                 eps_hat: bool = ..., weight_decay: float = ..., alpha: float = ...,
                 centered: bool = ...) -> None: ...
    lr: float
    def set(self, momentum: float = ..., nesterov: bool = ..., beta1: float = ...,
            beta2: float = ..., eps: float = ..., eps_hat: bool = ...,
            weight_decay: float = ..., alpha: float = ..., centered: bool = ...) -> None: ...
    def allocate(self, n_params: int, dtype: np.dtype | type | str) -> None: ...
    def copy_state(self) -> tuple[tuple[np.ndarray, ...] | None, int, float]: ...
    def load_state(self, vectors: list[np.ndarray], t: int) -> None: ...
    def bind_schedule(self, kind: int, gamma: float = ..., step_size: int = ..., warmup: int = ...,
                      T_max: int = ..., start_factor: float = ..., eta_min: float = ...,
                      state: tuple[int, float, float] | None = ...) -> float: ...
    def step_schedule(self) -> float: ...
    def schedule_state(self) -> tuple[int, int, float, float]: ...
