"""Benchmark harnesses: IEB intrinsic metrics, ICL accuracy by strategy, speed; shared report writing."""
