"""Errors a user sees. Each names where in their input the problem is, and no traceback
reaches them: the CLI prints these and exits 1."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass

from reconciler.model import SourceRef


@dataclass(frozen=True, slots=True)
class Problem:
    """One finding about the user's input, with its position when it has one."""

    message: str
    source: SourceRef | None = None

    def __str__(self) -> str:
        return f"{self.source}: {self.message}" if self.source else self.message


class ReconcilerError(Exception):
    """Base of every error the CLI reports without a traceback (exit 1)."""


class InputError(ReconcilerError):
    """The input is invalid; carries every problem found, not just the first."""

    def __init__(self, problems: list[Problem], warnings: list[Problem] | None = None) -> None:
        self.warnings = list(warnings or ())  # found too, not errors (validate shows them)
        self.problems = sorted(
            problems,
            key=lambda p: (p.source is None, p.source and (p.source.file, p.source.line,
                                                          p.source.column), p.message),
        )
        super().__init__("\n".join(str(p) for p in self.problems))


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """``" (did you mean 'x'?)"`` when one of ``choices`` is close to ``word``, else ``""``."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""
