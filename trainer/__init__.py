"""facesearch.trainer: triplet-loss fine-tuning, evaluation, calibration and export. Not built yet (issue 5)."""
