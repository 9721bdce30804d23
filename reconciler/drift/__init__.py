"""Drift: what differs live from the desired state, and why (docs/drift.md).

``make_drift_report(root, live_source=..., customers=..., applied_ref=...)`` returns a
:class:`DriftReport`; :mod:`.render` turns it into text, Markdown or a self-contained HTML page.
"""

from reconciler.drift.classify import drift_desired, make_drift_report
from reconciler.drift.record import DEFAULT_APPLIED_REF
from reconciler.drift.report import CLASSES, LABELS, DriftItem, DriftReport

__all__ = ["CLASSES", "DEFAULT_APPLIED_REF", "LABELS", "DriftItem", "DriftReport",
           "drift_desired", "make_drift_report"]
