"""``tokenomy report``: spend, baseline, savings by lever, token economy and latency from the usage ledger.

Modules, one job each: :mod:`~.timeparse` (``--since``/``--until``), :mod:`~.sql` (query text per
dialect), :mod:`~.query` (running the queries, rolling them up into :mod:`~.model` rows),
:mod:`~.percentiles` (numpy percentiles for SQLite), :mod:`~.formats` (JSON, CSV),
:mod:`~.render_table` (rich), :mod:`~.render_html` (the self-contained HTML
file, its charts drawn by the dashboard's chart module) and :mod:`~.command` (the CLI glue).
"""
