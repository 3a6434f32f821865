"""A job line's ``gpu_types`` name the site's catalog: a type the site defines
(``[catalog.gpus.NAME]`` the built-in catalog lacks) was refused (``unknown GPU``) by
``carbond submit`` and by the daemon reading the line, though its regions had that GPU."""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

import pytest

from daemon.ledger import Ledger
from daemon.queue.ingest import Queue
from daemon.queue.job_request import JobRequest
from daemon.queue.line import parse_line
from daemon.queue.reasons import InvalidLineError
from daemon.settings import Settings
from policies.footprint.gpus import DEFAULT_GPU_CATALOG, GPU_SPEC_FIELDS
from tests.daemon.helpers import append, job_line

_NOW = datetime(2026, 12, 7, tzinfo=UTC)
_L4 = {k: v for k, v in asdict(DEFAULT_GPU_CATALOG.get("L4")).items() if k in GPU_SPEC_FIELDS}
_SETTINGS = {"catalog": {"gpus": {"L40": {**_L4, "embodied_method": "act-estimate",
                                          "nvml_names": ["NVIDIA L40"]}}}}  # fmt: skip


def test_a_line_names_a_type_of_the_sites_catalog() -> None:
    catalog = Settings.model_validate(_SETTINGS).catalog.gpu_catalog()
    line = job_line(gpu_types=["nvidia l40", "T4"]).strip()
    request = parse_line(line, _NOW, None, catalog)
    assert isinstance(request, JobRequest) and request.gpu_types == ("L40", "T4")
    with pytest.raises(InvalidLineError, match=r"field 'gpu_types': unknown GPU 'nvidia l40'"):
        parse_line(line, _NOW)  # the built-in catalog has none


def test_the_daemons_queue_reads_the_sites_types(tmp_path: Path) -> None:
    settings = Settings.model_validate({**_SETTINGS, "state_dir": str(tmp_path)})
    with Ledger.open(tmp_path / "ledger.db") as ledger:
        queue = Queue.from_settings(settings, ledger)
        queue.prepare()
        append(queue.path, job_line(id="a", gpu_types=["L40"]))
        queue.ingest(_NOW)
        job = ledger.job("a")
        assert job.request.gpu_types == ("L40",)
