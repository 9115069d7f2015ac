"""Benchmark harnesses behind `icl-retriever bench`: ICL accuracy by selection strategy (`icl`), IEB intrinsic metrics (`ieb`), task discovery
(`tasks`), answer scoring and statistics (`scoring`) and result writing (`_report`). The repository's
top-level `benchmarks/` folder keeps the scripts and the committed results."""
