"""The benchmark suite: ``python3 -m bench`` (what ``make bench`` runs) measures, writes every figure
to bench/results.json, and renders BENCHMARKS.md from that file alone (``python3 -m bench.render``).

Each benchmark module returns its section as data: columns, tables of figures, ratios, targets and
every run's measurements. Every child runs on 127.0.0.1 with port 0 in a temporary directory that
is removed afterwards, and is killed in a ``finally`` if still alive.
"""
