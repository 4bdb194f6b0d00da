"""The rules, one module per kind of evidence: gradient histograms (and per-parameter norms read as
layers), a global gradient norm, weight histograms, and the training loss that gates them all.

The rules are scale-free: they compare layers with each other (depth ratio), a run with its own start
(growth), or count what cannot be healthy (non-finite values, exact zeros). Absolute magnitudes are
never judged, since they depend on the loss scale, batch size and parameterisation. Each rule returns
`Finding`s holding facts (analyzer.facts) and the thresholds in force, never sentences.
"""
