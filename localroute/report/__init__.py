"""The evaluate report: one self-contained HTML file (PNG plots inlined) built from metrics.json.

Everything drawn or tabulated is read from the metrics dict `localroute evaluate` writes, so the
report can be rebuilt from ``metrics.json`` alone (:func:`write_report`). It opens on the
at-a-glance summary (``summary``) and the headline plot; every latency and energy figure is
shown with its provenance and source, folded under each experiment.
"""

from localroute.report.render import render_report, write_report

__all__ = ["render_report", "write_report"]
