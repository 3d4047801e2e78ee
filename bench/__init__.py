"""Benchmark harness: ``python -m bench SCENARIO [--quick] [--json]``.

Every scenario starts what it needs (a throwaway PostgreSQL database, its own
Redis database index, real ``celery worker`` subprocesses with the production
settings of ``celeryconfig``) and removes it again, also on failure or Ctrl-C.
Progress goes to stderr; stdout carries only the result.  See BENCHMARKS.md.
"""
