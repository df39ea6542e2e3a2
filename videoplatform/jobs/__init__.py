"""Cross-cutting job machinery: queues and their priorities and retry policies, the beat
schedule, task outcome counters, the record of failures and of scheduled runs (docs/jobs.md).

``queues`` and ``priorities`` import no Django model: the Celery app reads them at import.
"""
