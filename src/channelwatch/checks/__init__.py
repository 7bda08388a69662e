"""Inspection readiness: what the national website and new-media checks would find today.

The checks (docs/inspection.md) read what the store already holds — publications, the pages polls
read (``store.checkstate.PageObservation``), homepage probes and link checks — and give a verdict
per channel and for the office: 否决风险 (a veto line is crossed), 预警 (an early-warning line is
crossed) or 正常. Modules:

- ``probe``: the ``probe`` job action: request each homepage once, within the time limit, and record it;
- ``linkcheck``: the ``link-check`` job action: follow the links of the homepage and column pages;
- ``rules``: the checks themselves, as of a date (``inspect``);
- ``outputs``: the verdict as JSON, text, HTML and XLSX;
- ``alerts``: which findings are new or worse since they were last mailed.
"""

from __future__ import annotations
