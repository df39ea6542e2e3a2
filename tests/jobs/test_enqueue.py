"""Enqueueing by name from a fresh server process: the first requests, on several threads at
once, all find their task while one of them imports the tasks modules."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from celery import Celery

from videoplatform.jobs import enqueue


def test_threads_asking_for_a_task_while_the_modules_load_all_get_it(monkeypatch: pytest.MonkeyPatch) -> None:
    app = Celery("fresh-process", set_as_current=False)
    imports = []

    def slow_import() -> None:  # Celery's own returns at once to a second caller
        imports.append(threading.get_ident())
        if len(imports) > 1:
            return
        time.sleep(0.3)

        @app.task(name="freshprocess.tasks.index_probe")
        def index_probe(video_id: str) -> None: ...

        app.tasks["freshprocess.tasks.index_probe"]

    monkeypatch.setattr(app.loader, "import_default_modules", slow_import)
    monkeypatch.setattr("celery.current_app", app)
    with ThreadPoolExecutor(max_workers=4) as pool:
        found: list[Any] = list(
            pool.map(lambda _: enqueue.task_named("freshprocess.tasks.index_probe"), range(4))
        )
    assert {task.name for task in found} == {"freshprocess.tasks.index_probe"}
    assert len(imports) == 1
