"""Metrics that match their reference implementations, computed from per-example rows."""

from xstilts.metrics.stats import score_from_stats, scores_from_resamples

__all__ = ["score_from_stats", "scores_from_resamples"]
