"""Problems met while analysing: the one exception type for bad input, and problems carried as data."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    """Something wrong with one input file or run, told to the user in one line."""

    path: str
    message: str
    # "truncated_end": the file ends in a partial record, as a live writer mid-record leaves it
    kind: str = ""

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


class AnalyzerError(Exception):
    """Bad input that stops one unit of work; carries the file and a sentence for the user."""

    def __init__(self, path: str, message: str):
        super().__init__(f"{path}: {message}")
        self.problem = Problem(str(path), message)
