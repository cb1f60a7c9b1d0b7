"""Research on top of the library and the Ray system (one package per world; not `ray job submit` targets)."""
