"""facesearch.trainer: triplet-loss fine-tuning of FaceNet, evaluation, calibration and export."""
