"""Benchmark scripts (`python -m benchmarks.speed`, `python -m benchmarks.generation_speed`) and committed
results; the harness code they share ships in `icl_retriever.bench`.

`icl.py` still lives here until it joins `icl_retriever.bench` (issue 14): the aliases below keep its
`benchmarks._report` / `benchmarks.scoring` imports pointing at the shipped modules meanwhile.
"""

import sys

from icl_retriever.bench import _report, scoring

sys.modules.update({f"{__name__}._report": _report, f"{__name__}.scoring": scoring})
