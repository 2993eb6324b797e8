"""User-facing data errors: each names the file, the key and what to do about it."""

from __future__ import annotations

from collections.abc import Collection


class GZSLError(Exception):
    """An error caused by the user's input; the CLI prints it without a traceback."""


def check_choice(setting: str, value: object, choices: Collection[str]) -> None:
    """Raise a :class:`GZSLError` naming ``setting`` and the valid ``choices`` unless
    ``value`` is one of them."""
    if value not in choices:
        raise GZSLError(f"unknown {setting} {value!r}; choose one of {', '.join(choices)}")


class DataError(GZSLError):
    """A problem with a dataset's files or arrays.

    Args:
        message: what is wrong, in one sentence.
        file: the file the problem is in, when there is one.
        key: the key (MATLAB variable, npz field) the problem is in, when there is one.
        fix: what the user can do about it.
    """

    def __init__(self, message: str, *, file: str | None = None, key: str | None = None,
                 fix: str | None = None) -> None:
        self.message = message
        self.file = file
        self.key = key
        self.fix = fix
        super().__init__(self.__str__())

    def __str__(self) -> str:
        where = ", ".join(p for p in (
            f"file {self.file}" if self.file else "",
            f"key '{self.key}'" if self.key else "",
        ) if p)
        text = f"{self.message}" + (f" ({where})" if where else "")
        if self.fix:
            text += f". Fix: {self.fix}"
        return text
