"""Memory analyses of report §2: gradient statistics, D(l, k) and memory capacity."""
