"""Adopting a live tenant (``reconciler import``), exporting it, and access reports.

- :mod:`.inventory` reads a whole tenant into the model, through the backend's cmdlets.
- :mod:`.entries` turns live resources into YAML entries; :mod:`.yamlout` writes them into
  resource files without touching what is already there.
- :mod:`.adopt` ties them together: :func:`~reconciler.adopt.adopt.import_customer`.
"""
