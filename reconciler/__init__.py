"""Declarative GitOps reconciler for Exchange Online mailboxes.

Data flows desired (YAML) and live (Exchange) state into the same model (``reconciler.model``),
the planner diffs them into a Plan (``reconciler.plan``), renderers show it (``reconciler.render``)
and apply carries it out (``reconciler.apply``). ``reconciler.emulator`` is a local Exchange that
backs the sandbox, offline snapshots and the tests.
"""

__version__ = "0.1.0"
