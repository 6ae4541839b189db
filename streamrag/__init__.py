"""streamrag: retrieval-augmented generation as a stream-processing dataflow."""

import os

# OpenMP threads (torch's encoder, llama.cpp) sleep between parallel regions instead of spinning: on a
# machine with other work, spinning threads wait on a preempted peer, and one query's embedding took
# 0.4-0.8 s instead of 0.07-0.1 s (docs/benchmarks.md, freshness). Set before torch loads its OpenMP
# runtime (which reads it once); OMP_WAIT_POLICY=ACTIVE in the environment keeps spinning.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"
