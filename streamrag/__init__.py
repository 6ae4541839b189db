"""streamrag: retrieval-augmented generation as a stream-processing dataflow."""

import os

from streamrag.core.lazy import defer_package_init

# OpenMP threads (torch's encoder, llama.cpp) sleep between parallel regions instead of spinning: on a
# machine with other work, spinning threads wait on a preempted peer, and one query's embedding took
# 0.4-0.8 s instead of 0.07-0.1 s (docs/benchmarks.md, freshness). Set before torch loads its OpenMP
# runtime (which reads it once); OMP_WAIT_POLICY=ACTIVE in the environment keeps spinning.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

# lancedb imports the generated REST client of lance-namespace, whose __init__ builds ~375 pydantic-validated
# API methods (1.3 s of a worker's ~5 s start, docs/benchmarks.md "Start") that a local or S3 index never calls;
# its data models still import as lancedb asks for them, the API classes on their first use.
defer_package_init("lance_namespace_urllib3_client")

__version__ = "0.1.0"
