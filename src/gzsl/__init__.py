"""gzsl: generalized zero-shot learning by generative feature synthesis.

Methods (GSMFlow, VAE-cFlow, AMAZ and a Gaussian baseline) learn from seen classes,
synthesise features for unseen classes from their semantic vectors, and are scored by
the standard GZSL protocol with an honest validation-based selection by default.
"""

__version__ = "0.1.0"
