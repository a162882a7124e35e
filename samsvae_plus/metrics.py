"""Public metrics namespace, ``sp.metrics``.

``challenge_score`` scores a prediction as the Virtual Cell Challenge does (PDS, DES, MAE
and the baseline-normalised score, matching cell-eval 0.8.x's ``vcc`` profile);
``prepare_prediction`` writes a prediction in the layout scorers expect, and
``cell_mean_baseline`` materialises the challenge's baseline. For the model's own
evaluation: ``data_ate`` (observed treatment effects), ``mask_recovery`` (against a
simulator's masks) and ``mask_pathway_report`` (learned masks against gene sets).
"""

from __future__ import annotations

from samsvae_plus.challenge.baseline import cell_mean_baseline
from samsvae_plus.challenge.metrics import REGISTRY as CHALLENGE_METRICS
from samsvae_plus.challenge.prepare import prepare_prediction
from samsvae_plus.challenge.score import ChallengeResult, challenge_score, score_against_baseline
from samsvae_plus.evaluate.ate import data_ate
from samsvae_plus.evaluate.masks import mask_recovery
from samsvae_plus.evaluate.pathway_report import mask_pathway_report

__all__ = [
    "CHALLENGE_METRICS",
    "ChallengeResult",
    "cell_mean_baseline",
    "challenge_score",
    "data_ate",
    "mask_pathway_report",
    "mask_recovery",
    "prepare_prediction",
    "score_against_baseline",
]
