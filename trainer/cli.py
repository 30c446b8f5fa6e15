"""facesearch-trainer: triplet-loss fine-tuning, evaluation, calibration and export."""

from facesearch.placeholder import placeholder_main


def main(argv=None) -> int:
    return placeholder_main("facesearch-trainer", "triplet-loss fine-tuning, evaluation, calibration and export", 5, argv)
