"""gradaudit: diagnose vanishing, exploding and dead gradients from TensorBoard histograms.

Importing this package is cheap: the analyzer never imports TensorFlow, PyTorch or JAX. The loggers
do: the Keras callback (``analyzer.callback``, TensorFlow only through ``analyzer.keras_tf`` on that
backend), ``analyzer.torch_logger`` and the Lightning and Hugging Face callbacks built on it.
"""

__version__ = "0.1.0"
