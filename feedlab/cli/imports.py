"""Placeholder: being written."""


def import_movielens() -> None:
    raise NotImplementedError


def import_csv() -> None:
    raise NotImplementedError


def stats() -> None:
    raise NotImplementedError
