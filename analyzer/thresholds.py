"""Every number a verdict depends on, each with its reason: the one place to read or change them."""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True)
class Thresholds:
    """The numbers behind every rule, the statistics they read and the fits they trust."""

    # --- vanishing and exploding across depth ---------------------------------------------------
    # Vanishing: the input-side layer's RMS is this many decades below the output-side layer's.
    # Initialisations that preserve gradient scale (Glorot/He) keep this within ~1 decade; 3 decades
    # (AutoTrainer's 1e-3) means the first layers learn a thousand times slower than the last.
    vanishing_depth_decades: float = 3.0
    # ...on at least this share of logged steps, so that one noisy step decides nothing. The exploding
    # depth rule asks the same share.
    vanishing_step_share: float = 0.5
    # A vanishing finding is critical where the median ratio is this many times the threshold (six
    # decades: the first layers learn a million times slower), high below that.
    vanishing_critical_factor: float = 2.0
    # Exploding across depth: the input-side layer's RMS is this many decades above the output side's.
    exploding_depth_decades: float = 3.0

    # --- exploding over time --------------------------------------------------------------------
    # The global gradient norm rises this many decades above its early level ...
    exploding_growth_decades: float = 2.0
    # ... and stays there on at least this many logged steps (sustained, not a one-step spike); the
    # Theil–Sen slope of the rise, with its interval, is reported as evidence.
    exploding_min_steps: int = 3
    # A norm's (or a layer's) early level is the median of its first this share of finite points ...
    early_share: float = 0.1
    # ... and of at least this many, so that a short run's first step alone decides nothing.
    early_min_points: int = 3
    # Exploding by the loss: the training loss at its end stands this many decades above its first
    # value; diverging runs often stop logging gradients (a writer that refuses NaN) before their
    # gradients look like anything.
    exploding_loss_decades: float = 2.0
    # ... or this many (it doubled) while the global gradient norm rose (its Theil–Sen interval above
    # zero): a divergence whose log ends a few steps in, when the writer refused the first NaN.
    exploding_loss_with_norm_decades: float = 0.3
    # Exploding cut short: a rise of this many decades that lasts to the run's last finite step
    # counts on fewer than `exploding_min_steps` steps (the writer stopped or dropped what followed).
    exploding_cut_short_decades: float = 4.0
    # A logged norm's spike: a point this many decades above the median of the points before it ...
    spike_decades: float = 1.0
    # ... of this many points.
    spike_window: int = 10

    # --- dead units -----------------------------------------------------------------------------
    # At least this share of a layer's gradient entries are exactly zero ...
    dead_zero_share: float = 0.5
    # ... on at least this share of the later logged steps (dead units do not recover) ...
    dead_step_share: float = 0.5
    # ... the later steps being those from this share of the run on (its second half).
    dead_late_from: float = 0.5
    # A dead-units finding is high where its worst layer has this share of zeros, medium below.
    dead_high_share: float = 0.9
    # Exact zeros are counted where the bucket holding zero is narrower than this fraction of the
    # layer's largest |g|. Coarser histograms (TF2's 30 even buckets) cannot isolate them: there the
    # share is estimated as the zero bucket's excess over a heavy-tailed fit to its neighbours, and
    # claimed only where the zero bucket holds this many times what the fit predicts.
    exact_zero_resolution: float = 1e-6
    coarse_zero_spike_ratio: float = 5.0
    # An estimate lumps the smallest values with the zeros: from coarse buckets a layer is claimed
    # dead at this larger share.
    coarse_dead_zero_share: float = 0.75
    # A coarse step whose largest |g| stands this many decades above the layer's own course (its
    # Theil–Sen line over steps) had its even buckets stretched by a few outliers: its zero bucket
    # swallows the layer's ordinary entries, so it shows nothing about zeros and never counts as dead.
    widened_range_decades: float = 1.0
    # Sparse by data, where no name says so: the input-side weight (one-hot or bag-of-words inputs)
    # whose entries are at least this share exact zeros on its first logged step ...
    sparse_zero_share: float = 0.5
    # ... and on at least this share of its logged steps. Its zeros are constant inputs, not dead
    # units, and it stays out of the depth fit.
    sparse_step_share: float = 0.9

    # --- the training loss ----------------------------------------------------------------------
    # The loss gate. The training loss "falls" when the Theil–Sen slope of log10(loss) over the later
    # part of its points has an interval below zero and the loss fell at least this many decades
    # over the run (0.3 decades: it halved), or when it fell `loss_converged_decades` over the run (it
    # trained, then levelled off). A depth-ratio or growth finding while the loss falls is kept at
    # severity "low", marked as gated, and sets no verdict; a loss that does not fall raises its
    # severity one step. Non-finite or missing gradients and exact-zero dead units are never gated;
    # dead units estimated from coarse buckets are.
    loss_fall_decades: float = 0.3
    loss_converged_decades: float = 1.0
    # The later part of the loss the gate fits: its points from this share on (the later half).
    loss_later_from: float = 0.5
    # The loss "at its end": the median of its last this share of points (a quarter), so one noisy
    # last point decides nothing.
    loss_end_share: float = 0.25

    # --- did the training learn ------------------------------------------------------------------
    # Stalled: the median of the training loss's last points is within this share above or below the
    # median of its first points, or above them (a loss that does not fall learned nothing), and along
    # its Theil–Sen line over the whole run it fell no more than that either (noisy ends decide nothing) ...
    stall_band: float = 0.1
    # ... those points being this share of its finite points at each end (at least one) ...
    stall_edge_share: float = 0.1
    # ... of a loss logged at this many points at least (fewer say too little of its course).
    stall_min_points: int = 5
    # The gradients that explain a stalled loss: every depth layer's late level (its last points)
    # this many decades below its early level (gradients collapsed: a saturated output) ...
    collapse_decades: float = 2.0
    # Unstable: the training loss spikes at least this many separate times ...
    unstable_min_spikes: int = 3
    # ... each spike at least this many times the median of the spike_window points before it ...
    unstable_spike_ratio: float = 3.0
    # ... with a gradient-norm spike at its step where a norm is logged: the norm this many times the
    # median of its spike_window points before it. Smaller than the loss's: a cross-entropy's gradient
    # is bounded (|softmax - one-hot| per example), so a loss that triples raises the norm less (a
    # BatchNorm CNN's nine 3-4x loss spikes came with norms 1.5-3.4x; at 1.5 a healthy float16 CNN
    # logged every step read unstable) ...
    unstable_norm_spike_ratio: float = 2.0
    # ... or at least this many times it where that is this many robust deviations (1.4826 x the median
    # absolute deviation of the log norm over those points) above it: a norm that barely varies spikes
    # less far (a Keras LSTM under SGD at 1.0 on batches of 8, unstable in truth: four 3-4x loss spikes
    # with norms 1.8-2.2x, three of them 2.3-4.6 deviations up; a healthy LayerNorm GRU's three
    # 1.7-1.9x norms: one)
    unstable_norm_spike_min_ratio: float = 1.5
    unstable_norm_spike_deviations: float = 2.0
    # ... and reaching at least this share of the loss's first value: a jump that undoes half of what
    # the training learned (a converged loss's minibatch noise is many times its small median, far below
    # that, and so is the saw-tooth of a loss logged at epoch boundaries)
    unstable_spike_of_start: float = 0.5
    # ... or its later half swings this many decades (90th over 10th percentile) with no downward
    # trend (its Theil–Sen interval reaches zero) ...
    unstable_swing_decades: float = 0.5
    # ... its points first averaged in runs of this many where the later half holds ten such runs or
    # more: a loss logged every step swings with each batch, and its level is what must swing (a GRU
    # on batches of 8 swung 3.3x point by point, 1.6x in 8-step means) ...
    swing_mean_points: int = 8
    # ... while the loss fell less than this share over the run (a converging loss's noise is no swing;
    # spikes are excused only where it fell more at its ends and along its line, and not to chance).
    unstable_max_fall: float = 0.5
    # A classifier ends stalled at this share of the chance-level loss or above (cross-entropy over C
    # classes guessed uniformly is ln C), however far it fell from a worse start, where its output
    # width C (its last layer's bias) is known ...
    chance_share: float = 0.9
    # ... and it is a cross-entropy classifier: its last layer applies a softmax, or its loss starts
    # within this share of ln C (an untrained classifier's logits are near 0: its loss is ln C).
    chance_start_share: float = 0.15
    # A learning rate that rises by this factor from one logged point to the next is a warm restart:
    # a loss spike at that step is the restart's, not instability.
    restart_factor: float = 2.0

    # --- gradients logged before unscaling (mixed precision) -------------------------------------
    # A scale changed at a step where the log2 RMS of at least this share of the layers ...
    scale_layer_share: float = 0.75
    # ... moved by the same whole number to within this much (log2): gradients never move in lockstep
    # by exact powers of two, a GradScaler's scale does.
    scale_step_tolerance: float = 0.05
    # The scaler's skipped steps (NaN/Inf, each followed by a finite step) are at most this share of
    # the logged steps, with the loss finite and not rising; beyond that, or otherwise, it diverged.
    skipped_max_share: float = 0.1

    # --- fits and amounts of data ---------------------------------------------------------------
    # Below this many logged steps no verdict is given.
    min_steps: int = 2
    # Fits over steps and across depth need this many points, and give intervals at this level.
    min_points_for_fit: int = 3
    confidence: float = 0.95

    # --- per-parameter gradient norms -----------------------------------------------------------
    # Per-parameter gradient norms logged as scalars, without the layer sizes: a norm is the RMS times
    # the square root of the parameter count, so a depth ratio of norms carries half the log10 ratio
    # of the two layers' sizes. The depth rules ask this many decades more of norms (sizes 100x apart
    # account for one decade).
    norm_size_decades: float = 1.0

    # --- weights only ---------------------------------------------------------------------------
    # A layer's movement is the summed |change of log10 RMS| of its weights between consecutive
    # logged steps. Vanishing: the input-side weight layer moves this many decades less than the
    # layer that moves most (under plain SGD an update is the step size times the gradient; on the
    # labelled dev runs, healthy nets stay within 1 decade and vanishing ones are 3.5 or more apart:
    # bench/accuracy/weight_movement.py) ...
    weight_still_decades: float = 2.0
    # ... where that layer moved at least this much: a run where no weight moves shows nothing here.
    weight_moving_decades: float = 1e-4
    # Exploding: a weight layer's RMS at its last finite step stands this many decades above its first
    # (healthy nets on the labelled runs: 0.4 at most), or a weight turns NaN/Inf.
    weight_growth_decades: float = 1.0

    @property
    def vanishing_critical_decades(self) -> float:
        return self.vanishing_critical_factor * self.vanishing_depth_decades

    @property
    def zero_spike_fit_share(self) -> float:
        """The heavy-tailed fit of a zero bucket (costly) is made only where that bucket holds at least
        this share of a step's entries: below it, its excess could not reach the least share any
        dead-units rule asks."""
        return min(self.dead_zero_share, self.coarse_dead_zero_share)

    def early_points(self, finite_points: int) -> int:
        """How many of a series' first finite points make its early level."""
        return max(self.early_min_points, int(finite_points * self.early_share))

    def for_norms(self) -> Thresholds:
        """The thresholds for per-parameter norms: depth rules raised by norm_size_decades."""
        return replace(
            self,
            vanishing_depth_decades=self.vanishing_depth_decades + self.norm_size_decades,
            exploding_depth_decades=self.exploding_depth_decades + self.norm_size_decades,
        )


DEFAULT_THRESHOLDS = Thresholds()
