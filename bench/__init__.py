"""The benchmark suite: ``python3 -m bench`` (what ``make bench`` runs) measures, writes
every figure to bench/results.json, and renders BENCHMARKS.md from that file.

- ``bench.ingest``: the course dataset through one server and 5 client
  processes per variant (durable, non-durable, durable over TLS), beside the in-process floor
  (``bench.floor``) measured in the same run;
- ``bench.fleets``: one load-generator process (``bench.loadgen``) against one
  server: 1,000 agencies x 100 bets (scale), 10,000 connections blocked on the
  draw (idle), each in plaintext and over TLS, and an agency's upload beside 500
  bad peers against alone (crowd);
- ``bench.tls``: the TLS twins' settings and the one contest's credentials they use;
- ``bench.profiling``: where the server spends its time, in extra runs;
- ``bench.render``: results.json to BENCHMARKS.md, plus the hand-written
  bench/profile-notes.md.

A twin (TLS against plaintext, say) is one more ``bench.spec.Variant`` in a
runner's VARIANTS (extra server env, extra client env; the load generator gets
the client env), and, for its ratio, one more ``Ratio`` (and ``Target``): the
renderer shows every variant as a column and every ratio as a row. Every child
runs on 127.0.0.1 with port 0, in a temporary directory that is removed
afterwards, and is killed in a ``finally`` if it is still alive.
"""
