"""Types of the compiled kernels (monitor/_kernels.pyx)."""

from typing import Any

import numpy as np
from numpy.typing import NDArray

def extract_rows(
    batch: Any, numeric: tuple[str, ...], other: tuple[str, ...]
) -> tuple[NDArray[np.float64], NDArray[np.int8], list[list[Any]], list[int]] | None: ...
def numeric_lists(columns: list[Any], n: int) -> tuple[NDArray[np.float64], NDArray[np.int8]] | None: ...
def encode_strings(column: Any) -> tuple[NDArray[np.int32], list[str]] | None: ...
