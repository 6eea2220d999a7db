"""Placeholder: being written."""


def generate() -> None:
    raise NotImplementedError
