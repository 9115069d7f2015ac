"""Benchmark scripts (`python -m benchmarks.speed`, `python -m benchmarks.generation_speed`,
`python -m benchmarks.bm25_speed`) and committed results; the harness code they share ships in
`icl_retriever.bench`."""
