"""Benchmarks (``./dev bench``). Each figure is measured beside a bare baseline in the
same run, and medians are reported because these machines are noisy."""
