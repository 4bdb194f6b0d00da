"""gradaudit: diagnose vanishing, exploding and dead gradients from TensorBoard histograms.

Importing this package is cheap: the analyzer never imports TensorFlow. The Keras callback lives in
``analyzer.callback`` and is the only module that does.
"""

__version__ = "0.1.0"
