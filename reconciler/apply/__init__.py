"""Apply: carry out a plan safely, exactly once, and verify it (docs/format.md §10, docs/apply.md).

- :mod:`.saved` loads a saved plan and refuses it when its format is unknown, its checksum
  does not match its changes, or live/desired state has moved since it was made.
- :mod:`.executor` runs operations in dependency order, in parallel across changes within the
  tenant's budget, journaling each one before and after it runs.
- :mod:`.confirm` re-reads live state to learn whether an ambiguous write committed.
- :mod:`.journal` is the append-only, fsynced record of what ran.
- :mod:`.state` remembers applied locations and writes not yet visible (pending propagation).
- :mod:`.runner` ties them together: :func:`~reconciler.apply.runner.apply_plan`.
"""
