"""Seeded test data for tests, the demo and the benchmarks (like ``numpy.testing``).

Nothing in the engine imports this package (an import-linter contract keeps it so):
:mod:`~monitor.testing.synthetic` (the demo spec's feature records and bad messages),
:mod:`~monitor.testing.scenarios` (a 20-feature stream with injectable changes) and
:mod:`~monitor.testing.model` (a calibrated binary model with delayed labels).
"""

__all__: list[str] = []
