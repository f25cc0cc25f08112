"""A dense float32 Newton solver for LinearSVC's default objective, all classes at once.

scikit-learn's ``LinearSVC()`` (``penalty="l2"``, ``loss="squared_hinge"``, one-vs-rest)
minimises, for every class ``k`` separately::

    f_k(w) = 1/2 ||w||^2 + C * sum_i max(0, 1 - y_ik * (x~_i . w))^2

where ``y_ik`` is +1 for samples of class ``k`` and -1 otherwise, and
``x~_i = [x_i, intercept_scaling]`` (the intercept is a regularised bias feature). The
objective is strictly convex, so its minimiser is unique: any solver that reaches it
gives the same model, hence the same predictions, as liblinear. liblinear copies the
data to float64 in its own sparse node format and solves one class at a time; here the
classes are solved together with dense float32 BLAS:

* the generalised Newton method for the L2-SVM (Keerthi & DeCoste, JMLR 2005): on the
  current active set ``A_k = {i : y_ik (x~_i . w) < 1}`` the objective is a quadratic,
  whose Newton system ``(I + 2C X~_A^T X~_A) d = -g`` is solved exactly (Cholesky), then
  an exact line search on the piecewise quadratic picks the step. The iteration stops
  when a full step leaves the active set unchanged (then the gradient is exactly zero,
  up to rounding) or the gradient is tiny;
* ``X~_A^T X~_A`` is kept per class and updated with the rows that enter or leave the
  active set, so after the first iterations a step costs little more than a Cholesky;
* with fewer rows than parameters (a few hundred images of 1,280 or 4,096 features) the
  Newton system is solved in the rows' space instead, by the Woodbury identity
  ``(I + 2C B^T B)^-1 = I - B^T (I/(2C) + B B^T)^-1 B`` with ``B = X~_A``: a Cholesky of
  the active rows' kernel ``X~_A X~_A^T``, taken from ``X~ X~^T`` computed once;
* a path of C values is solved in ascending order, each warm-started from the last.

Nothing here is specific to featx; the functions take arrays and return arrays.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.linalg

log = logging.getLogger(__name__)

GRAD_TOL = 1e-6
STEP_TOL = 1e-7
MAX_NEWTON_ITER = 100
#: memory for the per-class Hessian blocks kept between iterations (float32)
GRAM_CACHE_BYTES = 1 << 30


@dataclass(frozen=True)
class SquaredHingeProblem:
    """The data of one one-vs-rest squared-hinge problem set.

    Attributes:
        X: ``(n_samples, n_features)`` float32, C-contiguous.
        Y: ``(n_samples, n_problems)`` float32 of +1/-1 (one column per class, or a
            single column for two classes).
        bias: the intercept feature's value (``intercept_scaling``), 0 for no intercept.
    """

    X: np.ndarray
    Y: np.ndarray
    bias: float

    @property
    def n_params(self) -> int:
        return self.X.shape[1] + (1 if self.bias else 0)

    def scores(self, W: np.ndarray) -> np.ndarray:
        """``X~ W``: ``(n_samples, n_problems)`` decision values of ``W (n_params, n_problems)``."""
        return scores(self.X, W, self.bias)

    def back(self, R: np.ndarray) -> np.ndarray:
        """``X~^T R``: ``(n_params, n_problems)`` for ``R (n_samples, n_problems)``."""
        out = self.X.T @ R
        if self.bias:
            out = np.vstack([out, self.bias * R.sum(axis=0, keepdims=True, dtype=np.float64).astype(out.dtype)])
        return out

    def gram(self, rows: np.ndarray) -> np.ndarray:
        """``X~_rows^T X~_rows``: ``(n_params, n_params)`` float32 for a boolean row mask."""
        sub = self.X[rows]
        dim = self.n_params
        out = np.empty((dim, dim), dtype=np.float32)
        d = self.X.shape[1]
        out[:d, :d] = sub.T @ sub
        if self.bias:
            col = self.bias * sub.sum(axis=0, dtype=np.float64)
            out[:d, d] = col
            out[d, :d] = col
            out[d, d] = self.bias * self.bias * len(sub)
        return out


def scores(X: np.ndarray, W: np.ndarray, bias: float) -> np.ndarray:
    """Decision values ``X W[:d] + bias * W[d]`` of ``X (n, d)`` and ``W (d or d+1, k)``.

    Returns:
        ``(n, k)`` float32.
    """
    d = X.shape[1]
    out = X @ W[:d].astype(X.dtype, copy=False)
    if bias:
        out += np.float32(bias) * W[d].astype(X.dtype)
    return out


def one_vs_rest_targets(y: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """+1/-1 targets as LinearSVC builds them: one column per class, one for two classes.

    Args:
        y: ``(n_samples,)`` labels.
        classes: ``(n_classes,)`` sorted distinct labels, at least two.

    Returns:
        ``(n_samples, n_classes)`` float32, or ``(n_samples, 1)`` (+1 for ``classes[1]``)
        when there are two classes.
    """
    if len(classes) == 2:
        return np.where(y == classes[1], 1.0, -1.0).astype(np.float32)[:, None]
    return np.where(y[:, None] == classes[None, :], 1.0, -1.0).astype(np.float32)


def predict_ovr(decision: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """LinearSVC's prediction from decision values ``(n, k)``: argmax, or sign for two classes."""
    if decision.shape[1] == 1:
        return classes[(decision[:, 0] > 0).astype(np.intp)]
    return classes[np.argmax(decision, axis=1)]


def exact_step(w: np.ndarray, d: np.ndarray, margin_gap: np.ndarray, c: np.ndarray, C: float) -> float:
    """Minimise the piecewise quadratic ``t -> f(w + t d)`` exactly, for ``t >= 0``.

    With ``r_i = 1 - y_i z_i`` (``margin_gap``) and ``c_i = y_i (x~_i . d)``,
    ``f'(t) = w.d + t d.d - 2C sum_i c_i max(0, r_i - t c_i)``: increasing and piecewise
    linear in ``t``. Walk its breakpoints in order until it changes sign.

    Args:
        w, d: ``(n_params,)`` current point and direction (float64).
        margin_gap: ``(n_samples,)`` ``r``; c: ``(n_samples,)`` ``c`` (float64).
        C: the regularisation constant.

    Returns:
        The minimising step length (0 when ``d`` is not a descent direction).
    """
    active = margin_gap > 0
    alpha = float(w @ d) - 2 * C * float(np.sum(c[active] * margin_gap[active]))
    beta = float(d @ d) + 2 * C * float(np.sum(c[active] ** 2))
    if alpha >= 0:
        return 0.0
    # events: a term leaves (c > 0, active now) or enters (c < 0, inactive now) at r / c
    leave = active & (c > 0)
    enter = ~active & (c < 0)
    events = leave | enter
    times = margin_gap[events] / c[events]
    sign = np.where(leave[events], -1.0, 1.0)
    order = np.argsort(times, kind="stable")
    times, sign = times[order], sign[order]
    ce, re = c[events][order], margin_gap[events][order]
    d_alpha = -2 * C * sign * ce * re
    d_beta = 2 * C * sign * ce * ce
    alphas = alpha + np.concatenate([[0.0], np.cumsum(d_alpha)])
    betas = beta + np.concatenate([[0.0], np.cumsum(d_beta)])
    ends = np.concatenate([times, [np.inf]])
    with np.errstate(divide="ignore", invalid="ignore"):
        roots = -alphas / betas
    hit = np.flatnonzero((roots <= ends) & (betas > 0))
    return float(max(roots[hit[0]], 0.0)) if len(hit) else float(times[-1]) if len(times) else 0.0


class _ClassState:
    """The Hessian block ``X~_A^T X~_A`` of one class, and the active set it was built on."""

    __slots__ = ("gram", "mask")

    def __init__(self) -> None:
        self.gram: np.ndarray | None = None
        self.mask: np.ndarray | None = None


class _GramCache:
    """Builds per-class ``X~_A^T X~_A`` by the cheapest route: update, from scratch, or complement.

    With ``keep`` false (many classes times many features would not fit the memory
    budget) nothing is kept per class between iterations, so the update route is off.
    With fewer rows than parameters, Newton systems are solved in the rows' space
    (:meth:`newton_direction`) from the kernel ``X~ X~^T``, built once.
    """

    def __init__(self, problem: SquaredHingeProblem, *, keep: bool = True) -> None:
        self.problem = problem
        self.keep = keep
        self.full: np.ndarray | None = None
        self.kernel: np.ndarray | None = None

    @property
    def in_row_space(self) -> bool:
        return self.problem.X.shape[0] < self.problem.n_params

    def newton_direction(self, state: _ClassState, mask: np.ndarray, C: float, gradient: np.ndarray) -> np.ndarray:
        """``-(I + 2C X~_A^T X~_A)^-1 g`` for the active rows ``mask``, by the cheaper of the two spaces."""
        if not self.in_row_space:
            hessian = np.eye(self.problem.n_params) + (2 * C) * self.hessian_block(state, mask).astype(np.float64)
            return -scipy.linalg.cho_solve(scipy.linalg.cho_factor(hessian, check_finite=False), gradient, check_finite=False)
        if not mask.any():
            return -gradient
        if self.kernel is None:
            X = self.problem.X
            self.kernel = (X @ X.T).astype(np.float64) + self.problem.bias**2
        rows = np.flatnonzero(mask)
        system = self.kernel[np.ix_(rows, rows)]
        system[np.diag_indices_from(system)] += 1.0 / (2 * C)
        X_active = self.problem.X[rows].astype(np.float64)
        d = X_active.shape[1]
        projected = X_active @ gradient[:d]
        if self.problem.bias:
            projected += self.problem.bias * gradient[d]
        v = scipy.linalg.cho_solve(scipy.linalg.cho_factor(system, check_finite=False), projected, check_finite=False)
        direction = -gradient.copy()
        direction[:d] += X_active.T @ v
        if self.problem.bias:
            direction[d] += self.problem.bias * v.sum()
        return direction

    def hessian_block(self, state: _ClassState, mask: np.ndarray) -> np.ndarray:
        n = len(mask)
        n_active = int(mask.sum())
        costs = {"scratch": n_active, "complement": (n - n_active) + (0 if self.full is not None else n)}
        if state.gram is not None and state.mask is not None:  # kept from the last iteration
            enter = mask & ~state.mask
            leave = state.mask & ~mask
            costs["update"] = int(enter.sum() + leave.sum())
        route = min(costs, key=costs.__getitem__)
        if route == "update" and state.gram is not None:
            gram = state.gram
            if enter.any():
                gram += self.problem.gram(enter)
            if leave.any():
                gram -= self.problem.gram(leave)
        elif route == "scratch":
            gram = self.problem.gram(mask)
        else:
            if self.full is None:
                self.full = self.problem.gram(np.ones(n, dtype=bool))
            gram = self.full - self.problem.gram(~mask) if n_active < n else self.full.copy()
        if self.keep:
            state.gram, state.mask = gram, mask.copy()
        return gram


def solve_path(
    X: np.ndarray,
    Y: np.ndarray,
    Cs: Sequence[float],
    *,
    bias: float = 1.0,
    grad_tol: float = GRAD_TOL,
    max_iter: int = MAX_NEWTON_ITER,
) -> list[np.ndarray]:
    """Minimise the one-vs-rest squared-hinge objective for every C, warm-starting along the path.

    Args:
        X: ``(n_samples, n_features)`` float32 training features.
        Y: ``(n_samples, n_problems)`` +1/-1 targets (see :func:`one_vs_rest_targets`).
        Cs: regularisation constants, solved in ascending order (each warm-starts the next).
        bias: intercept feature value (LinearSVC's ``intercept_scaling``); 0: no intercept.
        grad_tol: stop a class when ``||g|| <= grad_tol * ||g at w=0||``.
        max_iter: Newton iterations per C at most.

    Returns:
        For each C in the order given, ``W (n_features [+1], n_problems)`` float64; the
        last row is the bias weight (``intercept_ = bias * W[-1]``).
    """
    problem = SquaredHingeProblem(np.ascontiguousarray(X, dtype=np.float32), np.asarray(Y, dtype=np.float32), float(bias))
    order = np.argsort(np.asarray(Cs, dtype=np.float64), kind="stable")
    states = [_ClassState() for _ in range(problem.Y.shape[1])]
    cache = _GramCache(problem, keep=problem.Y.shape[1] * problem.n_params**2 * 4 <= GRAM_CACHE_BYTES)
    W = np.zeros((problem.n_params, problem.Y.shape[1]), dtype=np.float64)
    solutions: list[np.ndarray] = [np.empty(0)] * len(Cs)
    for index in order:
        W = _newton(problem, float(Cs[index]), W, states, cache, grad_tol=grad_tol, max_iter=max_iter)
        solutions[index] = W.copy()
    return solutions


def _newton(
    problem: SquaredHingeProblem,
    C: float,
    W: np.ndarray,
    states: list[_ClassState],
    cache: _GramCache,
    *,
    grad_tol: float,
    max_iter: int,
) -> np.ndarray:
    """Generalised Newton iterations for one C from the warm start ``W``; returns the optimum."""
    Y = problem.Y
    n_problems = Y.shape[1]
    g0 = np.linalg.norm(problem.back(-Y).astype(np.float64), axis=0) * 2 * C
    W = W.copy()
    todo = np.ones(n_problems, dtype=bool)
    for iteration in range(max_iter):
        Z = problem.scores(W[:, todo])
        Yt = Y[:, todo]
        gap = 1.0 - Yt * Z
        active = gap > 0
        G = W[:, todo] + 2 * C * problem.back(np.where(active, Z - Yt, 0.0).astype(np.float32)).astype(np.float64)
        columns = np.flatnonzero(todo)
        directions = np.zeros((problem.n_params, len(columns)))
        for j, k in enumerate(columns):
            if np.linalg.norm(G[:, j]) <= grad_tol * g0[k]:
                continue
            direction = cache.newton_direction(states[k], active[:, j], C, G[:, j])
            # a step below float32 resolution of the weights changes nothing: converged
            if np.linalg.norm(direction) > STEP_TOL * np.linalg.norm(W[:, k]):
                directions[:, j] = direction
        moving = np.flatnonzero(np.abs(directions).max(axis=0) > 0)
        if len(moving) == 0:
            return W
        A = problem.scores(directions[:, moving])
        done_now = []
        for m, column in enumerate(moving.tolist()):
            problem_index = int(columns[column])
            y = Yt[:, column].astype(np.float64)
            step = exact_step(W[:, problem_index], directions[:, column], gap[:, column].astype(np.float64), y * A[:, m], C)
            W[:, problem_index] += step * directions[:, column]
            # each term crosses its breakpoint at most once along the line, so an unchanged
            # active set means the step stayed on one quadratic piece: the Newton step was
            # exact there, and the new point is its minimiser, the optimum.
            if np.array_equal((1.0 - y * (Z[:, column] + step * A[:, m])) > 0, active[:, column]):
                done_now.append(problem_index)
        still = todo.copy()
        still[columns[np.setdiff1d(np.arange(len(columns)), moving)]] = False
        still[done_now] = False
        todo = still
        if not todo.any():
            return W
        log.debug("C=%g Newton iteration %d: %d problems left", C, iteration + 1, int(todo.sum()))
    log.warning("squared-hinge Newton solver stopped after %d iterations at C=%g (%d problems not converged)", max_iter, C, int(todo.sum()))
    return W
