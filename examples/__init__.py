"""Short demonstrations of the library: the algorithm core in one process, and one scored chain."""
