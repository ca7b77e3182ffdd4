"""The benchmark suite: ``python3 -m bench`` (what ``make bench`` runs) writes BENCHMARKS.md.

One module per benchmark, each with a ``run_once`` that does one bounded
measurement and returns plain numbers plus correctness flags:

- ``bench.ingest``: the course dataset through one server and 5 client
  processes, durable and non-durable interleaved, beside the in-process floor
  (``bench.floor``) measured in the same run;
- ``bench.scale``: 1,000 agencies x 100 bets from one load-generator process;
- ``bench.idle``: 10,000 agencies connected at once, blocked on the draw;
- ``bench.profile_ingest``: where the server spends its CPU during the ingest.

Every child process runs on 127.0.0.1 with port 0, in a temporary directory
that is removed afterwards, and is killed in a ``finally`` if it is still alive.
"""
