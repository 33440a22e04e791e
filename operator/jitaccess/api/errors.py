"""Field-addressed validation errors, the one error shape every layer reports to users."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FieldError:
    """One thing wrong with one field, phrased so the user knows what to change."""

    path: str
    message: str
    reason: str = "InvalidSpec"  # the CamelCase condition reason it stands for, where it is shown

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


def join_errors(errors: list[FieldError]) -> str:
    """All errors in one line, for a status message or an admission denial."""
    return "; ".join(str(error) for error in errors)
