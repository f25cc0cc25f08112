"""Solvers of stage two's objectives that share work across grid points and folds.

:mod:`~featx.fitting.solvers.l2svm`: LinearSVC's squared-hinge objective, all classes at
once, warm-started along the C path. Solvers take arrays and return arrays.
"""
