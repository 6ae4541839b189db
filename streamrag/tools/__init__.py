"""Tools over the running system: benchmarks (``bench_*``), evaluation (``evaluate``, ``ir_metrics``, the fusion
study), operations (``replay``, ``index_admin``, ``cluster``, ``publish``, ``status``) and fuzzing; called by the CLI."""
