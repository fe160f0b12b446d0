"""Programs built on the SDK, run from the repository root (``python -m examples.demo``).

Not part of the installed distribution: they show how to use :mod:`client_sdk` and may need
extras (torch, scikit-learn, matplotlib) that the SDK itself does not.
"""
