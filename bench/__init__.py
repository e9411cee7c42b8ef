"""`make bench`: our uWSGI deployment against Sahara's own `sahara-api`
launcher, on the same local stack (see docs/benchmarks.md)."""
