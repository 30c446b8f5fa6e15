"""Errors the trainer reports to the user (exit code 2), without a traceback."""


class TrainerError(Exception):
    pass
