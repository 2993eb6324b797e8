"""gzsl: generalized zero-shot learning by generative feature synthesis.

Methods (GSMFlow, VAE-cFlow, AMAZ and a Gaussian baseline) learn from seen classes,
synthesise features for unseen classes from their semantic vectors, and are scored by
the standard GZSL protocol with an honest validation-based selection by default.
"""

__version__ = "0.1.0"


__all__ = ["Run", "load_run", "train"]


def __getattr__(name: str):
    """Lazy exports, so ``import gzsl`` stays cheap (no torch until needed)."""
    if name in ("train", "Run"):
        from gzsl import api

        return getattr(api, name)
    if name == "load_run":
        from gzsl.experiments.trained import load_run

        return load_run
    raise AttributeError(f"module 'gzsl' has no attribute {name!r}")
