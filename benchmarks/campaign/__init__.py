"""Campaign simulator: a whole active-learning labeling campaign with an oracle annotator.

Each round, for every *arm* (a selection strategy, its query unit and budget),
the simulator runs the app's own round step
(:func:`learning.round_step.propose_round`: score the dusk pool, calibrate
suggestion thresholds, select, suggest), lets an oracle answer the queries
from the ground truth, fine-tunes and evaluates (``simulation``). A *full
dusk supervision* reference and a *frames-only* reference continue from the
same round-0 model for the same rounds and steps.

Protocol: CamVid day→dusk, the same splits as benchmarks/domain_adaptation.py
(``data``); round 0 is that benchmark's cached source-only base when present,
else our own (``base_model``).

    python -m benchmarks.campaign --quick   # tiny synthetic data, ~1 minute, writes nothing to docs
    python -m benchmarks.campaign           # CamVid, hours on a CPU; docs/BENCHMARKS.md + docs/campaign.png
    python -m benchmarks.campaign --region-percent 0.2 --arms random_region adaptive ...
                                            # another budget regime: its own section and plot

(``python benchmarks/campaign …`` works too.) Each finished (arm, seed)
campaign is appended to benchmarks/results/campaign.jsonl (tracked, ``records``),
keyed by the settings and the round-0 weights: a rerun resumes, parallel
processes with different ``--arms`` share it, and ``--report-only`` renders
the tables from it once the base exists again (the base's training is
deterministic on the CPU, so rebuilding it restores the same key).

Modules: ``config`` (arms, references, settings, output paths), ``data``,
``base_model`` (round 0), ``simulation`` (one arm or reference),
``records`` (round records and their store), ``verdicts`` (curves and
targets), ``render`` (markdown and plot), ``throughput``, ``runner``
(every arm and seed), ``cli``.
"""
