"""Thin-plate spline in numpy: fit through control points, evaluate on many points.

Small and exact: with ``regularization=0`` the spline maps each control point exactly onto its target.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

Points = npt.NDArray[np.float64]


def _kernel(distances_squared: Points) -> Points:
    # U(r) = r^2 log r^2 (the log of the squared distance only scales U, which the solve absorbs).
    with np.errstate(divide="ignore", invalid="ignore"):
        values = distances_squared * np.log(distances_squared)
    return np.nan_to_num(values, nan=0.0, posinf=0.0, neginf=0.0)


class ThinPlateSpline:
    """A 2-D -> 2-D thin-plate spline ``f`` with ``f(source[i]) == target[i]``."""

    def __init__(self, source: Points, target: Points, regularization: float = 0.0) -> None:
        source = np.asarray(source, np.float64)
        target = np.asarray(target, np.float64)
        if source.shape != target.shape or source.ndim != 2 or source.shape[1] != 2:
            raise ValueError("source and target must both be (n, 2)")
        count = len(source)
        if count < 3:
            raise ValueError("a thin-plate spline needs at least 3 control points")
        # Normalise coordinates so the system is well conditioned whatever the image size.
        self._centre = source.mean(axis=0)
        self._scale = float(np.abs(source - self._centre).max()) or 1.0
        normalised = (source - self._centre) / self._scale
        kernel = _kernel(((normalised[:, None, :] - normalised[None, :, :]) ** 2).sum(-1))
        kernel += regularization * np.eye(count)
        affine = np.hstack([np.ones((count, 1)), normalised])
        system = np.zeros((count + 3, count + 3))
        system[:count, :count] = kernel
        system[:count, count:] = affine
        system[count:, :count] = affine.T
        rhs = np.zeros((count + 3, 2))
        rhs[:count] = target
        # lstsq rather than solve: collinear control points leave the affine part underdetermined.
        self._coefficients = np.linalg.lstsq(system, rhs, rcond=None)[0]
        self._controls = normalised

    def __call__(self, points: Points) -> Points:
        normalised = (np.asarray(points, np.float64) - self._centre) / self._scale
        count = len(self._controls)
        kernel = _kernel(((normalised[:, None, :] - self._controls[None, :, :]) ** 2).sum(-1))
        affine = np.hstack([np.ones((len(normalised), 1)), normalised])
        return kernel @ self._coefficients[:count] + affine @ self._coefficients[count:]
