"""Type stubs of the compiled update rules (fastnn/_rules.pyx)."""
from typing import Any

import numpy as np

UPDATE_CODES: dict[str, int]
STATE_VECTORS: dict[int, int]
LIVE: Any

class UpdateRule:
    states: tuple[np.ndarray, ...] | None
    kind: int
    t: int
    def __init__(self, kind: int, lr: float, momentum: float = ..., nesterov: bool = ...,
                 beta1: float = ..., beta2: float = ..., eps: float = ...,
                 eps_hat: bool = ..., weight_decay: float = ..., alpha: float = ...,
                 centered: bool = ...) -> None: ...
    def set(self, lr: float, momentum: float = ..., nesterov: bool = ..., beta1: float = ...,
            beta2: float = ..., eps: float = ..., eps_hat: bool = ...,
            weight_decay: float = ..., alpha: float = ..., centered: bool = ...) -> None: ...
    def allocate(self, n_params: int, dtype: np.dtype | type | str) -> None: ...
    def copy_state(self) -> tuple[tuple[np.ndarray, ...], int] | None: ...
    def load_state(self, vectors: list[np.ndarray], t: int) -> None: ...
