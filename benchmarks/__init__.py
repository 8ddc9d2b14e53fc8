"""Benchmarks and soak runs of metaledger, run from a checkout (``python -m benchmarks.bench``).

Not installed: the wheel holds only ``eventstore``, ``projections`` and ``cli``
(``[tool.setuptools.packages.find]`` in ``pyproject.toml``). The scripts start
child processes of themselves with ``-m``; those inherit the working directory,
the checkout, so they find this package as their parent did.
"""
