"""``streamrag bench start`` reads where a worker's start went from the line the worker prints when ready."""

from __future__ import annotations

import os
import time

from streamrag.cli.workers import process_age_s, ready_line
from streamrag.tools.bench_start import cpu_s, ready_stages


def test_the_ready_line_is_read_back_stage_by_stage() -> None:
    line = ready_line("query", 2.214, 3.1, {"kafka": 150.0, "index+model": 412.5, "warm-up": 20.0, "wiring": 90.0})
    assert line == ("query worker running 3.10 s after its process started: imports 2.21 s, kafka 0.15 s, "
                    "index+model 0.41 s, warm-up 0.02 s, wiring 0.09 s (Ctrl-C to stop)")
    assert ready_stages(f"some log\n{line}\nmore") == {"ready": 3.1, "imports": 2.21, "kafka": 0.15,
                                                       "index+model": 0.41, "warm-up": 0.02, "wiring": 0.09}
    assert ready_stages("a worker that never became ready") == {}


def test_a_process_knows_its_age() -> None:
    age = process_age_s()
    assert age is not None and 0 < age < 3600  # this test process started before it ran, not an hour ago


def test_the_cpu_a_process_used_is_read() -> None:
    used = cpu_s(os.getpid())
    assert used is not None and 0 < used <= time.process_time() + 0.05  # this process: /proc agrees with Python
