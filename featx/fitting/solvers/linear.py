"""Many L2-regularised linear classifiers on one feature matrix, solved at once in torch.

scikit-learn's two linear objectives, for a problem ``p`` that uses the rows ``m_p`` of
``X`` (a cross-validation fold, or the whole training split):

* ``logistic`` (``LogisticRegression()``: multinomial, L2 on the weights, unpenalised
  intercept)::

      f_p(W, b) = 1/2 ||w||^2 + C_p sum_{i in m_p} -log softmax(x'_i w + b)[y_i]

  (with two classes, the single-vector binary form scikit-learn uses:
  ``C sum log(1 + exp(-y_i z_i))``, ``y_i`` in {-1, +1});
* ``squared_hinge`` (``LinearSVC()``: one-vs-rest, the intercept a regularised bias
  feature of value ``intercept_scaling``)::

      f_pk(w, w_b) = 1/2 (||w||^2 + w_b^2) + C_p sum_{i in m_p} max(0, 1 - y_ik z_ik)^2.

Both are strictly convex, so each problem has one optimum whatever the solver. Here
``x'`` is the problem's own scaling of the features (a fold's ``StandardScaler``): every
problem is written in the coordinates of one shared matrix ``X`` (the features centred and
scaled once, for all problems), the fold's scaling becoming a per-feature weight of the
penalty and a shift of the intercept (:class:`Affine`). So a single matrix product serves
every fold and every C value: ``X @ [W_1 ... W_P]``.

The solver is L-BFGS for all problems in a batch at once, each with its own history, step
and stopping, preconditioned by ``I + C c X^T X`` (exact for the penalty): the Gram
matrix of the rows times ``c``, the loss's second derivative averaged over the rows at
the latest point (a row's mean over the softmax's ``K - 1`` directions, ``2`` or ``0``
for the squared hinge as the row is inside the margin or not). Böhning's bound (``1/2``
for the softmax, ``2`` for the squared hinge) would over-estimate the curvature many times
once the rows are fitted. In the eigenbasis of ``X^T X`` the preconditioner is diagonal,
so applying it costs two ``d x d`` products. The step is backtracked (Armijo) through the
minimum of a quadratic, per problem: a problem whose step holds keeps its evaluation.
The squared hinge's one-vs-rest outputs are independent problems (objective, gradient and
curvature are sums over outputs), so each output has its own history, step and stopping
(:attr:`_Batch.n_blocks`), and stops early at a certified duality gap
(:func:`_hinge_duality_gap`); the softmax's outputs are coupled and move together.
Problems are warm-started (along a C path, the caller passes the previous solutions).
Products run in float32 (TF32 off on CUDA), objectives and convergence tests in float64;
rows are streamed in blocks when the matrix is too large for the device. Nothing here reads files or knows about featx.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

import numpy as np

if TYPE_CHECKING:
    import torch

Loss = Literal["logistic", "squared_hinge"]

#: stop a problem when its largest gradient component, divided by ``C * n_rows``, is below
#: this. scikit-learn's lbfgs stops at 1e-4 in the same units (its objective is ours / (C
#: n_rows)); half of it keeps every logistic solution's objective at or below
#: scikit-learn's (within the tests' 1e-4), also where few rows and many features make the
#: optimum flat. liblinear's Newton solver ends much nearer its optimum than its tolerance
#: says, so the squared hinge needs a tighter gradient (benchmarks/RESULTS.md), or the
#: certified gap of GAP_TOL.
GRAD_TOL: dict[str, float] = {"logistic": 5e-5, "squared_hinge": 5e-6}
#: the squared hinge (whose dual needs no constraint) also stops once its duality gap, an
#: upper bound of the distance to the optimum's objective, is at most this fraction of it
GAP_TOL = 1e-5
MAX_ITER = 1000
HISTORY = 10
#: bytes of the feature matrix kept on a CUDA device at once; larger matrices are streamed
DEVICE_BUDGET = 0.6
#: a CPU solve of fewer values (rows x features) than this runs on one thread: its products
#: are too small for intra-op parallelism to pay, and on a loaded machine every parallel
#: operation waits for a descheduled thread (benchmarks/RESULTS.md)
SINGLE_THREAD_VALUES = 2_000_000
#: rows are grouped into runs of the same problems (see :class:`_Run`) when there are at most
#: this many runs; beyond it, every problem's product covers every row and masks apply
MAX_RUNS = 64


@dataclass(frozen=True)
class Affine:
    """A problem's scaling ``x' = (x - shift) / scale`` of the shared matrix's rows.

    Both are ``(n_features,)`` in the shared matrix's coordinates; the identity is
    ``shift = 0``, ``scale = 1``.
    """

    shift: np.ndarray
    scale: np.ndarray


@dataclass(frozen=True)
class Solution:
    """The optimum of each problem, in the problems' own coordinates (``x'``).

    Attributes:
        coef: ``(n_problems, n_outputs, n_features)`` float64: scikit-learn's ``coef_``.
        intercept: ``(n_problems, n_outputs)`` float64: scikit-learn's ``intercept_``.
        iterations: ``(n_problems,)`` L-BFGS iterations each problem took.
        gradient: ``(n_problems,)`` largest gradient component at the end, divided by
            ``C * n_rows`` (scikit-learn's units).
        objective: ``(n_problems,)`` float64 objective value (for the log: it must be no
            higher than scikit-learn's own solution's).
        streamed: the feature matrix was streamed to the device in row blocks.
        gap: ``(n_problems,)`` the squared hinge's duality gap over its objective: a
            certified bound of how far above the optimum the objective is (NaN for the
            logistic loss, whose dual is not evaluated).
    """

    coef: np.ndarray
    intercept: np.ndarray
    iterations: np.ndarray
    gradient: np.ndarray
    objective: np.ndarray
    streamed: bool = False
    gap: np.ndarray | None = None


class Workspace:
    """A shared matrix on its device, with what every solve on it reuses: the eigenbasis of
    ``X^T X / n`` (the preconditioner's) and the row blocks it is streamed in.

    Args:
        X: ``(n_samples, n_features)`` float32, best centred and scaled (e.g. standardised
            over all rows: that conditions the problems).
        device: where to solve. On CUDA the matrix is copied once when it fits in
            :data:`DEVICE_BUDGET` of the free memory, else streamed in row blocks.
        block_rows: rows per product (at least 1); None: every row when the matrix is on
            the device, else as many as a quarter of the device's free memory holds.
    """

    def __init__(self, X: np.ndarray, device: torch.device | str = "cpu", *, block_rows: int | None = None) -> None:
        import torch

        self.device = torch.device(device)
        n, d = X.shape
        host = torch.from_numpy(np.ascontiguousarray(X, dtype=np.float32))
        on_device = self.device.type != "cuda" or X.nbytes <= DEVICE_BUDGET * _free_bytes(self.device)
        self.streamed = not on_device
        self.X = host.to(self.device) if on_device else host.pin_memory()
        if block_rows is None:
            block_rows = n if on_device else max(1024, int(_free_bytes(self.device) * 0.25 // max(1, 4 * d)))
        self.block_rows = max(1, block_rows)
        # CPU BLAS multiplies a transposed operand several times slower in the gradient's
        # X^T dZ than a contiguous copy of X^T; CUDA's does not care
        self.XT = self.X.T.contiguous() if self.device.type == "cpu" else None
        with _exact_matmul():
            gram = torch.zeros((d, d), dtype=torch.float64, device=self.device)
            for _, block in self.blocks():
                gram += (block.T @ block).double()
            # float64 for the decomposition: the eigenvalues span many decades
            eigenvalues, basis = torch.linalg.eigh((gram / max(n, 1)).cpu())
        self.eigenvalues = eigenvalues.clamp_min(0.0).to(self.device)
        self.basis = basis.float().to(self.device)

    def blocks(self) -> Iterator[tuple[slice, torch.Tensor]]:
        """The matrix's rows in blocks, on the device."""
        n = self.X.shape[0]
        for start in range(0, n, self.block_rows):
            rows = slice(start, min(start + self.block_rows, n))
            block = self.X[rows]
            yield rows, (block if block.device == self.device else block.to(self.device, non_blocking=True))


@dataclass(frozen=True)
class _Run:
    """Consecutive rows that belong to the same problems.

    A caller that orders the rows by fold (each fold's held-out rows together) gets one run
    per fold, and each problem's products then cover its own rows only. Without such an
    order, one run holds every row and every problem, and ``mask`` selects their rows.
    """

    rows: slice
    members: torch.Tensor  # (m,) int64, the problems that use these rows
    mask: torch.Tensor | None  # (rows, P) float32 0/1 when the run mixes rows of other problems


@dataclass
class _Batch:
    """The problems of one solve, on the workspace's device."""

    work: Workspace
    targets: torch.Tensor  # (n, outputs) float32: one-hot (logistic), +1/-1 (hinge, binary logistic)
    row_counts: torch.Tensor  # (P,) float64, the rows of each problem
    runs: list[_Run]
    C: torch.Tensor  # (P,) float64
    penalty: torch.Tensor  # (P, d) weights of the penalty per feature: scale^2
    coupling: torch.Tensor  # (P, d) shift: the problem's own intercept is b~ + shift . W~
    bias_scale: float  # intercept_scaling (hinge; the bias feature's value)
    loss: Loss
    binary: bool
    curvature: torch.Tensor = field(init=False)  # (P, B) float64 c: the loss's second derivative the preconditioner assumes
    inverse_curvature: torch.Tensor = field(init=False)  # (P, B, d) 1 / (1 + C c n_rows lambda) in the eigenbasis
    observed_curvature: torch.Tensor = field(init=False)  # (P, B) float64 the rows' mean at the last evaluation
    margin_sums: torch.Tensor = field(init=False)  # (P, k) float64 squared hinge: sum of max(0, 1 - y z) at the last evaluation

    def assume_curvature(self, curvature: torch.Tensor) -> None:
        """Precondition with the loss's second derivative ``curvature`` ``(P, B)`` per row
        (the Hessian of the data term taken as ``C c n_rows X^T X / n``), kept above a
        millionth of the loss's bound (fitted rows alone would make it zero)."""
        curvature = curvature.clamp_min(1e-6 * _curvature(self))
        self.curvature = curvature
        strength = self.C.view(-1, 1) * curvature * self.row_counts.view(-1, 1)
        self.inverse_curvature = (1.0 / (1.0 + strength.unsqueeze(2) * self.work.eigenvalues.view(1, 1, -1))).float()

    @property
    def n_blocks(self) -> int:
        """``B``: the independent parts of each problem's unknowns. The squared hinge's
        one-vs-rest outputs are separate problems (objective, gradient and curvature are
        sums over outputs), so each gets its own L-BFGS history, step and stopping; the
        softmax couples its outputs: one block."""
        return int(self.targets.shape[1]) if self.loss == "squared_hinge" else 1

    @property
    def n_problems(self) -> int:
        return int(self.row_counts.shape[0])

    @property
    def device(self) -> torch.device:
        return self.work.device


def solve_path(
    work: Workspace,
    y: np.ndarray,
    masks: np.ndarray,
    affines: list[Affine],
    Cs: list[float],
    *,
    loss: Loss,
    intercept_scaling: float = 1.0,
    grad_tol: float | None = None,
    max_iter: int = MAX_ITER,
    warm: Solution | None = None,
) -> list[Solution]:
    """Minimise every problem's objective (see the module docstring) for each C, in
    ascending order, each C warm-started from the solutions of the previous one.

    Args:
        work: the shared matrix (:class:`Workspace`).
        y: ``(n_samples,)`` class indices ``0 .. n_classes-1`` (every class present).
        masks: ``(n_problems, n_samples)`` bool, the rows of each problem.
        affines: per problem, its scaling of the matrix (:class:`Affine`).
        Cs: inverse regularisation strengths; every problem is solved at each.
        loss: ``logistic`` or ``squared_hinge``.
        intercept_scaling: the bias feature's value (``squared_hinge``).
        grad_tol: the stopping tolerance in scikit-learn's units (None: the loss's
            :data:`GRAD_TOL`).
        max_iter: L-BFGS iterations per C at most.
        warm: where the smallest C starts (a :class:`Solution` for these problems, in their
            own coordinates); zero when None.

    Returns:
        One :class:`Solution` per C, in the order given, in the problems' own coordinates
        (scikit-learn's ``coef_`` and ``intercept_`` of an estimator fitted on ``x'``).
    """
    solutions: list[Solution | None] = [None] * len(Cs)
    with _exact_matmul(), cpu_threads(work.device, work.X.numel()):
        for index in np.argsort(np.asarray(Cs, dtype=np.float64), kind="stable"):
            batch = _batch(work, y, masks, np.full(len(masks), float(Cs[index])), affines, loss=loss, intercept_scaling=intercept_scaling)
            params = _start(batch, warm)
            tolerance = GRAD_TOL[loss] if grad_tol is None else grad_tol
            params, iterations, gradient, objective, gap = _lbfgs(batch, params, grad_tol=tolerance, max_iter=max_iter)
            coef, intercept = _to_own_coordinates(batch, params)
            warm = Solution(coef, intercept, iterations, gradient, objective, streamed=work.streamed, gap=gap)
            solutions[index] = warm
    return [solution for solution in solutions if solution is not None]


def solve(
    X: np.ndarray,
    y: np.ndarray,
    masks: np.ndarray,
    affines: list[Affine],
    C: float,
    *,
    loss: Loss,
    intercept_scaling: float = 1.0,
    device: torch.device | str = "cpu",
) -> Solution:
    """:func:`solve_path` for one C on a matrix of its own (for tests and one-off problems)."""
    (solution,) = solve_path(Workspace(X, device), y, masks, affines, [C], loss=loss, intercept_scaling=intercept_scaling)
    return solution


def objective(loss: Loss, X: np.ndarray, y: np.ndarray, coef: np.ndarray, intercept: np.ndarray, C: float) -> float:
    """scikit-learn's objective (the module docstring's ``f``) of ``coef_`` and
    ``intercept_`` on rows ``X`` already in the problem's own scaling, in float64.

    Args:
        loss: ``logistic`` (``LogisticRegression``) or ``squared_hinge`` (``LinearSVC``,
            with ``intercept_scaling=1``).
        X: ``(n, d)`` rows; y: ``(n,)`` class indices ``0 .. n_classes-1``.
        coef, intercept: ``(outputs, d)`` and ``(outputs,)``, as scikit-learn stores them.
        C: the inverse regularisation strength.
    """
    Z = np.asarray(X, dtype=np.float64) @ coef.T + intercept
    binary = coef.shape[0] == 1
    if loss == "logistic":
        if binary:
            return 0.5 * float((coef**2).sum()) + C * float(np.logaddexp(0.0, -np.where(y == 1, 1.0, -1.0) * Z[:, 0]).sum())
        Z = Z - Z.max(axis=1, keepdims=True)
        log_p = Z - np.log(np.exp(Z).sum(axis=1, keepdims=True))
        return 0.5 * float((coef**2).sum()) - C * float(log_p[np.arange(len(y)), y].sum())
    T = np.where(y == 1, 1.0, -1.0)[:, None] if binary else np.where(y[:, None] == np.arange(coef.shape[0])[None, :], 1.0, -1.0)
    return 0.5 * float((coef**2).sum() + (intercept**2).sum()) + C * float((np.maximum(0.0, 1.0 - T * Z) ** 2).sum())


def decision(X: np.ndarray, coef: np.ndarray, intercept: np.ndarray) -> np.ndarray:
    """Decision values ``x' coef^T + intercept`` of ``X (n, d)`` for one problem: ``(n, outputs)``."""
    return np.asarray(X, dtype=np.float32) @ coef.T.astype(np.float32) + intercept.astype(np.float32)


# --------------------------------------------------------------------------- setting up


@contextlib.contextmanager
def cpu_threads(device: torch.device | str, n_values: int) -> Iterator[None]:
    """One intra-op thread for a CPU problem of fewer than :data:`SINGLE_THREAD_VALUES`
    values; torch's setting (process-wide) is restored after. CUDA work is left alone."""
    import torch

    if torch.device(device).type != "cpu" or n_values >= SINGLE_THREAD_VALUES or torch.get_num_threads() == 1:
        yield
        return
    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(saved)


@contextlib.contextmanager
def _exact_matmul() -> Iterator[None]:
    """float32 products without TF32 (on by default for some CUDA matmuls; costs three digits)."""
    import torch

    saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32, torch.get_float32_matmul_precision())
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.set_float32_matmul_precision("highest")
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved[0], saved[1]
        torch.set_float32_matmul_precision(saved[2])


def _outputs(y: np.ndarray, loss: Loss) -> tuple[np.ndarray, bool]:
    """Targets per output column: one-hot (softmax), or +1/-1 (one column per class for the
    hinge; one column, +1 for the second class, for two classes)."""
    n_classes = int(y.max()) + 1
    binary = n_classes == 2
    if binary:
        return np.where(y == 1, 1.0, -1.0).astype(np.float32)[:, None], True
    onehot = (y[:, None] == np.arange(n_classes)[None, :]).astype(np.float32)
    return (onehot if loss == "logistic" else 2.0 * onehot - 1.0), False


def _batch(
    work: Workspace, y: np.ndarray, masks: np.ndarray, Cs: np.ndarray, affines: list[Affine], *, loss: Loss, intercept_scaling: float
) -> _Batch:
    import torch

    device = work.device
    targets, binary = _outputs(y, loss)
    # x' . w = x . (w / scale) - (shift / scale) . w: with W~ = w / scale as the unknown,
    # the penalty weights are scale^2 and the problem's own intercept is b~ + shift . W~
    scale = np.stack([a.scale for a in affines]).astype(np.float64)
    shift = np.stack([a.shift for a in affines]).astype(np.float64)
    batch = _Batch(
        work=work,
        targets=torch.from_numpy(targets).to(device),
        row_counts=torch.from_numpy(np.asarray(masks, dtype=bool).sum(1).astype(np.float64)).to(device),
        runs=_runs(np.asarray(masks, dtype=bool), device),
        C=torch.as_tensor(np.asarray(Cs, dtype=np.float64), device=device),
        penalty=torch.from_numpy(scale**2).to(device=device, dtype=torch.float32),
        coupling=torch.from_numpy(shift).to(device=device, dtype=torch.float32),
        bias_scale=float(intercept_scaling),
        loss=loss,
        binary=binary,
    )
    # the loss's curvature is at most c per row: Hessian <= diag(penalty) + C c n_rows (X^T X / n)
    # in the problem's rows; the penalty weights are near 1 (a fold's scaling is close to the matrix's)
    bound = torch.full((batch.n_problems, batch.n_blocks), _curvature(batch), dtype=torch.float64, device=device)
    batch.assume_curvature(bound)
    batch.observed_curvature = bound.clone()
    batch.margin_sums = torch.zeros((batch.n_problems, batch.targets.shape[1]), dtype=torch.float64, device=device)
    return batch


def _runs(masks: np.ndarray, device: torch.device) -> list[_Run]:
    """The rows in runs of the same problems (:class:`_Run`), or one masked run of all rows
    when they are not ordered so (more than :data:`MAX_RUNS` runs)."""
    import torch

    n_problems, n = masks.shape
    changes = np.flatnonzero(np.any(masks[:, 1:] != masks[:, :-1], axis=0)) + 1
    bounds = [0, *changes.tolist(), n]
    if len(bounds) - 1 > MAX_RUNS:
        everyone = torch.arange(n_problems, device=device)
        return [_Run(slice(0, n), everyone, torch.from_numpy(masks.T.astype(np.float32)).to(device))]
    runs = []
    for start, stop in itertools.pairwise(bounds):
        members = np.flatnonzero(masks[:, start])
        if len(members):
            runs.append(_Run(slice(start, stop), torch.from_numpy(members).to(device), None))
    return runs


def _free_bytes(device: torch.device) -> float:
    import torch

    if device.type != "cuda":
        return float("inf")
    free, _ = torch.cuda.mem_get_info(device)
    return float(free)


def _start(batch: _Batch, warm: Solution | None) -> tuple[torch.Tensor, torch.Tensor]:
    import torch

    P, d, outputs = batch.n_problems, batch.work.X.shape[1], batch.targets.shape[1]
    if warm is None:
        return torch.zeros((P, d, outputs), device=batch.device), torch.zeros((P, outputs), device=batch.device)
    # from the problems' own coordinates: W~ = coef / scale, b~ = intercept - shift . W~
    coef = torch.as_tensor(warm.coef, device=batch.device, dtype=torch.float32).transpose(1, 2)
    W = coef / batch.penalty.sqrt().view(P, d, 1)
    b = torch.as_tensor(warm.intercept, device=batch.device, dtype=torch.float32) - _dot(batch.coupling, W)
    return W, b


def _to_own_coordinates(batch: _Batch, params: tuple[torch.Tensor, torch.Tensor]) -> tuple[np.ndarray, np.ndarray]:
    W, b = params
    P, d = W.shape[0], W.shape[1]
    coef = (W.double() * batch.penalty.double().sqrt().view(P, d, 1)).transpose(1, 2)
    intercept = b.double() + _dot(batch.coupling.double(), W.double())
    return coef.cpu().numpy(), intercept.cpu().numpy()


def _dot(a: torch.Tensor, W: torch.Tensor) -> torch.Tensor:
    """``a_p . W_p`` for every problem: ``(P, d)`` and ``(P, d, k)`` -> ``(P, k)``."""
    return (a.unsqueeze(1) @ W).squeeze(1)


# --------------------------------------------------------------------------- the objective


def _value_grad(batch: _Batch, W: torch.Tensor, b: torch.Tensor, active: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Objective per block ``(P, B)`` float64 (see :attr:`_Batch.n_blocks`) and its gradient
    ``(P, d, k)``, ``(P, k)`` (zero for inactive problems); ``active`` is ``(P,)``."""
    import torch

    P, d, k = W.shape
    B = batch.n_blocks
    data = torch.zeros((P, B), dtype=torch.float64, device=batch.device)
    curvature = torch.zeros((P, B), dtype=torch.float64, device=batch.device)
    margins = torch.zeros((P, k), dtype=torch.float64, device=batch.device)
    grad_W = torch.zeros_like(W)
    grad_b = torch.zeros_like(b)
    for rows, block in batch.work.blocks():
        for run in batch.runs:
            start, stop = max(run.rows.start, rows.start), min(run.rows.stop, rows.stop)
            if start >= stop:
                continue
            members = run.members[active[run.members]]  # converged problems cost nothing
            m = int(members.numel())
            if m == 0:
                continue
            part = block[start - rows.start : stop - rows.start]
            Z = (part @ W[members].permute(1, 0, 2).reshape(d, m * k)).view(-1, m, k) + b[members].view(1, m, k)
            loss_rows, dZ, curvature_rows = _loss(batch, Z, batch.targets[start:stop].view(-1, 1, k))
            if run.mask is not None:
                mask = run.mask[start - run.rows.start : stop - run.rows.start][:, members].unsqueeze(2)
                loss_rows, dZ, curvature_rows = loss_rows * mask, dZ * mask, curvature_rows * mask
            data.index_add_(0, members, loss_rows.sum(0).double())
            curvature.index_add_(0, members, curvature_rows.sum(0).double())
            if batch.loss == "squared_hinge":  # dZ = -2 y max(0, 1 - y z), y = +-1
                margins.index_add_(0, members, (-0.5 * batch.targets[start:stop].view(-1, 1, k) * dZ).sum(0).double())
            part_T = part.T if batch.work.XT is None else batch.work.XT[:, start:stop]
            grad_W.index_add_(0, members, (part_T @ dZ.reshape(-1, m * k)).view(d, m, k).permute(1, 0, 2))
            grad_b.index_add_(0, members, dZ.sum(0))
    C = batch.C.view(P, 1)
    if batch.loss == "squared_hinge":
        # penalty 1/2 (sum_j penalty_j W_j^2 + w_b^2), w_b = (b + coupling . W) / bias_scale, per output
        w_b = (b + _dot(batch.coupling, W)) / batch.bias_scale
        penalty = 0.5 * ((batch.penalty.view(P, d, 1) * W * W).sum(1).double() + w_b.double() ** 2)
        grad_W = (
            batch.penalty.view(P, d, 1) * W
            + batch.coupling.view(P, d, 1) * (w_b / batch.bias_scale).view(P, 1, k)
            + C.float().view(P, 1, 1) * grad_W
        )
        grad_b = w_b / batch.bias_scale + C.float() * grad_b
    else:
        penalty = 0.5 * (batch.penalty.view(P, d, 1) * W * W).sum((1, 2)).double().view(P, 1)
        grad_W = batch.penalty.view(P, d, 1) * W + C.float().view(P, 1, 1) * grad_W
        grad_b = C.float() * grad_b
    keep = active.view(P, 1, 1).to(W.dtype)
    batch.observed_curvature = torch.where(active.view(P, 1), curvature / batch.row_counts.view(P, 1), batch.observed_curvature)
    batch.margin_sums = torch.where(active.view(P, 1), margins, batch.margin_sums)
    return penalty + C * data, grad_W * keep, grad_b * keep[..., 0]


def _loss(batch: _Batch, Z: torch.Tensor, T: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per row, problem and block (:attr:`_Batch.n_blocks`): the loss ``(rows, P, B)``, its
    derivative in ``Z`` ``(rows, P, k)``, and the mean second derivative in ``Z`` over the
    directions it acts on ``(rows, P, B)``."""
    import torch

    if batch.loss == "squared_hinge":
        gap = (1.0 - T * Z).clamp_min(0.0)
        return gap * gap, -2.0 * T * gap, 2.0 * (gap > 0).float()
    if batch.binary:  # log(1 + exp(-y z)), y in {-1, +1}
        margin = T * Z
        p = torch.sigmoid(-margin)
        return torch.nn.functional.softplus(-margin), -T * p, p * (1.0 - p)
    log_p = torch.log_softmax(Z, dim=2)
    p = torch.exp(log_p)
    # the mean eigenvalue of diag(p) - p p^T on the k-1 directions it acts on
    return -(log_p * T).sum(2, keepdim=True), p - T, (1.0 - (p * p).sum(2, keepdim=True)) / (Z.shape[2] - 1)


# --------------------------------------------------------------------------- L-BFGS


def _precondition_apply(batch: _Batch, gW: torch.Tensor, gb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The preconditioner ``H0`` applied to a gradient-shaped pair."""
    V = batch.work.basis
    P, d, k = gW.shape
    # one (d, d) x (d, P k) product each way: a broadcast batched matmul is many times slower
    t = (V.T @ gW.permute(1, 0, 2).reshape(d, P * k)).view(d, P, k) * batch.inverse_curvature.permute(2, 0, 1)
    strength = batch.C.view(P, 1) * batch.curvature * batch.row_counts.view(P, 1)
    return (V @ t.view(d, P * k)).view(d, P, k).permute(1, 0, 2), gb / (1.0 + strength.float())


def _hinge_duality_gap(
    batch: _Batch, W: torch.Tensor, b: torch.Tensor, gW: torch.Tensor, gb: torch.Tensor, f: torch.Tensor
) -> torch.Tensor:
    """The squared hinge's duality gap per problem and output ``(P, k)``: an upper bound of
    how far ``f`` is above the optimum's objective.

    In the problem's own coordinates (``w`` with the bias feature ``w_b``) the dual of
    ``1/2 ||w||^2 + C sum_i max(0, 1 - y_i w.x_i)^2`` at ``a_i = 2 C max(0, 1 - y_i w.x_i)``
    (always feasible: ``a >= 0``) is ``sum a - 1/2 ||v||^2 - sum a^2 / (4 C)`` with
    ``v = sum_i a_i y_i x_i = w - grad``: every term comes from the evaluation at ``W, b``.
    Every ``t a`` (``t >= 0``) is feasible too, and the dual is a concave quadratic in
    ``t``: its maximum ``(sum a)^2 / (2 Q)``, ``Q = ||v||^2 + sum a^2 / (2 C)``, is the
    bound used (tighter away from the optimum, where ``t = 1``).
    """
    P, d, k = W.shape
    scale, shift, s = batch.penalty.sqrt().view(P, d, 1), batch.coupling.view(P, d, 1), batch.bias_scale
    # own coordinates: w = scale W~, b = b~ + shift . W~, w_b = b / s; the gradient by the chain rule
    w = (scale * W).double()
    w_b = ((b + _dot(batch.coupling, W)) / s).double()
    v = w - ((gW - shift * gb.view(P, 1, k)) / scale).double()
    v_b = w_b - s * gb.double()
    C = batch.C.view(P, 1)
    squares = f - 0.5 * ((w * w).sum(1) + w_b * w_b)  # C sum max(0, 1 - y z)^2 = sum a^2 / (4 C)
    alphas = 2.0 * C * batch.margin_sums  # sum a
    quadratic = (v * v).sum(1) + v_b * v_b + 2.0 * squares
    return f - alphas * alphas / (2.0 * quadratic.clamp_min(1e-300))


def _curvature(batch: _Batch) -> float:
    """A bound of the loss's second derivative in the decision values: exact for the squared
    hinge (2), Böhning's 1/2 for the softmax, 1/4 for the binary logistic loss (where the
    preconditioner starts, and its floor's scale)."""
    if batch.loss == "squared_hinge":
        return 2.0
    return 0.25 if batch.binary else 0.5


def _lbfgs(
    batch: _Batch, params: tuple[torch.Tensor, torch.Tensor], *, grad_tol: float, max_iter: int
) -> tuple[tuple[torch.Tensor, torch.Tensor], np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Batched L-BFGS with a history, step and stopping per problem and block
    (:attr:`_Batch.n_blocks`), Armijo backtracking. Returns per problem the solution, the
    iterations of its slowest block, its largest gradient, its objective and its relative
    duality gap (squared hinge; NaN otherwise)."""
    import torch

    W, b = params
    P, d, k = W.shape
    B = batch.n_blocks

    def flat(gW: torch.Tensor, gb: torch.Tensor) -> torch.Tensor:
        """``(P, B, size)``: a block's weights and intercepts in a row."""
        if B == 1:
            return torch.cat([gW.reshape(P, d * k), gb], 1).view(P, 1, d * k + k)
        return torch.cat([gW.transpose(1, 2), gb.unsqueeze(2)], 2)

    def unflat(v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if B == 1:
            return v[:, 0, : d * k].reshape(P, d, k), v[:, 0, d * k :]
        return v[:, :, :d].transpose(1, 2), v[:, :, d]

    def dot(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return (u * v).sum(2)

    everyone = torch.ones(P, dtype=torch.bool, device=batch.device)
    f, gW, gb = _value_grad(batch, W, b, everyone)
    batch.assume_curvature(batch.observed_curvature)
    g = flat(gW, gb)
    x = flat(W, b)
    units = (batch.C * batch.row_counts).view(P, 1)  # scikit-learn's gradient is ours / (C n)
    history_s = torch.zeros((HISTORY, *x.shape), device=batch.device)
    history_y = torch.zeros_like(history_s)
    history_rho = torch.zeros((HISTORY, P, B), device=batch.device)
    gamma = torch.ones((P, B), device=batch.device)
    stalled = torch.zeros((P, B), dtype=torch.bool, device=batch.device)
    converged = torch.zeros((P, B), dtype=torch.bool, device=batch.device)
    iterations = torch.zeros((P, B), dtype=torch.int64, device=batch.device)
    filled = 0
    for _ in range(max_iter):
        gradient = g.abs().amax(2).double() / units
        if batch.loss == "squared_hinge":
            relative_gap = _hinge_duality_gap(batch, *unflat(x), *unflat(g), f) / f.abs().clamp_min(1e-300)
            converged |= (relative_gap <= GAP_TOL) | (gradient <= grad_tol)
        else:
            converged |= gradient <= grad_tol
        active = ~(stalled | converged)
        if not bool(active.any()):
            break
        iterations += active.long()
        # two-loop recursion, newest pair first
        q = g.clone()
        alphas = []
        for j in range(filled):
            a = history_rho[j] * dot(history_s[j], q)
            q -= a.unsqueeze(2) * history_y[j]
            alphas.append(a)
        r = flat(*_precondition_apply(batch, *unflat(q))) * gamma.unsqueeze(2)
        for j in reversed(range(filled)):
            beta = history_rho[j] * dot(history_y[j], r)
            r += (alphas[j] - beta).unsqueeze(2) * history_s[j]
        direction = -r
        slope = dot(g, direction).double()
        not_descent = active & (slope >= 0)  # a broken history: restart from the preconditioned gradient
        if bool(not_descent.any()):
            fallback = -flat(*_precondition_apply(batch, *unflat(g)))
            direction = torch.where(not_descent.unsqueeze(2), fallback, direction)
            slope = dot(g, direction).double()
        direction = direction * active.unsqueeze(2)
        slope = slope * active
        step = torch.ones((P, B), dtype=torch.float64, device=batch.device)
        trial = x + direction
        f_new, gW_new, gb_new = _value_grad(batch, *unflat(trial), active.any(1))
        g_new = flat(gW_new, gb_new)
        accepted = (f_new <= f + 1e-4 * step * slope) | ~active
        for _ in range(19):
            if bool(accepted.all()):
                break
            # backtrack the blocks whose step failed; the others keep their evaluation
            retry = ~accepted
            # the minimum of the quadratic through f(x), the slope and f(x + step d), kept in [0.1, 0.5] step
            curve = (f_new - f - step * slope).clamp_min(1e-300)
            shrink = (-slope * step / (2.0 * curve)).clamp(0.1, 0.5)
            step = torch.where(retry, step * shrink, step)
            trial = torch.where(retry.unsqueeze(2), x + step.float().unsqueeze(2) * direction, trial)
            f_retry, gW_retry, gb_retry = _value_grad(batch, *unflat(trial), retry.any(1))
            f_new = torch.where(retry, f_retry, f_new)
            g_new = torch.where(retry.unsqueeze(2), flat(gW_retry, gb_retry), g_new)
            accepted = accepted | (f_new <= f + 1e-4 * step * slope)
        # no decrease at float32 resolution: as converged as float32 allows
        failed = active & ~accepted
        progress = active & accepted & (f - f_new > 1e-13 * f.abs())
        stalled |= failed | (active & accepted & ~progress)
        moved = progress.unsqueeze(2)
        s_new = torch.where(moved, trial - x, torch.zeros_like(x))
        y_new = torch.where(moved, g_new - g, torch.zeros_like(g))
        sy = dot(s_new, y_new)
        good = progress & (sy > 1e-12 * dot(s_new, s_new).sqrt() * dot(y_new, y_new).sqrt())
        if bool(good.any()):
            hy = flat(*_precondition_apply(batch, *unflat(y_new)))
            gamma = torch.where(good, sy / dot(y_new, hy).clamp_min(1e-30), gamma)
        history_s = torch.roll(history_s, 1, dims=0)
        history_y = torch.roll(history_y, 1, dims=0)
        history_rho = torch.roll(history_rho, 1, dims=0)
        history_s[0] = torch.where(good.unsqueeze(2), s_new, torch.zeros_like(s_new))
        history_y[0] = torch.where(good.unsqueeze(2), y_new, torch.zeros_like(y_new))
        history_rho[0] = torch.where(good, 1.0 / sy.clamp_min(1e-30), torch.zeros_like(sy))
        filled = min(filled + 1, HISTORY)
        if bool(progress.any()):
            batch.assume_curvature(torch.where(progress, batch.observed_curvature, batch.curvature))
        x = torch.where(moved, trial, x)
        f = torch.where(progress, f_new, f)
        g = torch.where(moved, g_new, g)
    gradient = g.abs().amax(2).double() / units
    if batch.loss == "squared_hinge":
        gap = (_hinge_duality_gap(batch, *unflat(x), *unflat(g), f).sum(1) / f.sum(1).abs().clamp_min(1e-300)).cpu().numpy()
    else:
        gap = np.full(P, np.nan)
    W, b = unflat(x)
    return (
        (W.contiguous(), b.contiguous()),
        iterations.amax(1).cpu().numpy(),
        gradient.amax(1).cpu().numpy(),
        f.sum(1).cpu().numpy(),
        gap,
    )
