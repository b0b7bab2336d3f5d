"""The one way the converter's passes build their diagnostics: a collector bound to the file being converted.

A diagnostic always carries its rule, message, JSON path, fix, level and file (DESIGN: errors carry locations);
a pass that finds problems holds one :class:`Problems` and never builds a ``Diagnostic`` by hand. Code that
works on one component without knowing its file (the catalog, the legacy rules) collects with ``Problems()``; the
resolve pass adds the file.

Example:
    >>> problems = Problems("config_train.json")
    >>> _ = problems.add("dangling-ref", "reference '@modle' names no slot", "train.optimizer.args.params")
    >>> problems.found[0].file, problems.found[0].level.name
    ('config_train.json', 'ERROR')
"""

from __future__ import annotations

from dataclasses import dataclass, field

from clara_hydra.errors import Diagnostic, Level

__all__ = ["Problems"]


@dataclass
class Problems:
    """The diagnostics found in one file, in the order found.

    Args:
        file: the file they are about (the Clara training config, environment.json, ...); empty where the caller
            adds it (the resolve pass, to what the catalog found).
    """

    file: str = ""
    found: list[Diagnostic] = field(default_factory=list)

    def add(
        self,
        rule: str,
        message: str,
        json_path: str,
        fix: str = "",
        level: Level = Level.ERROR,
        *,
        once: bool = False,
    ) -> Diagnostic:
        """Record a diagnostic at ``json_path`` and return it.

        Args:
            once: do not record it again when an equal one is there (a component lowered twice, say).
        """
        diagnostic = Diagnostic(rule, message, json_path, fix, level, self.file)
        if not (once and diagnostic in self.found):
            self.found.append(diagnostic)
        return diagnostic
