"""Placeholder: being written."""


def serve() -> None:
    raise NotImplementedError


def up() -> None:
    raise NotImplementedError
