"""Placeholder: being written."""


def evaluate() -> None:
    raise NotImplementedError
