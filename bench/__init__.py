"""payport benchmarks: `make bench` (python -m bench). Ratios against same-run baselines."""
