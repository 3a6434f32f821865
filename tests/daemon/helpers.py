"""Small builders shared by the daemon tests."""

from __future__ import annotations

import json
import os
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from daemon.intensity.providers import EmbeddedIntensity
from daemon.inventory import build_inventory
from daemon.ledger import Ledger
from daemon.queue.ingest import Queue
from daemon.queue.job_request import JobRequest
from daemon.queue.line import parse_line
from daemon.service import Service
from daemon.settings import RegionSettings, Settings
from daemon.testing import RecordingExecutor
from policies import get_policy

PAPER_REGIONS = (
    RegionSettings(name="qc", zone="CA-QC", executor="local", gpus=("T4",)),
    RegionSettings(name="ciso", zone="US-CAL-CISO", executor="local", gpus=("RTX6000-Ada",) * 2),
    RegionSettings(name="pace", zone="US-NW-PACE", executor="local", gpus=("RTX6000-Ada",)),
)


def job_line(**fields: Any) -> str:
    """A valid job line with ``fields`` overriding the defaults, newline included."""
    record: dict[str, Any] = {"model": "llama-1b", "command": ["true"], "requests": 4}
    record.update(fields)
    return json.dumps(record) + "\n"


def job_request(job_id: str, now: datetime) -> JobRequest:
    """The parsed request of a valid job line with id ``job_id``, read at ``now``."""
    request = parse_line(job_line(id=job_id).strip(), now)
    assert isinstance(request, JobRequest)
    return request


def append(path: Path, text: str | bytes) -> None:
    """A raw append, as any program would do it."""
    data = text.encode() if isinstance(text, str) else text
    with path.open("ab") as out:
        out.write(data)


def spool_file(state: Path, uid: int, text: str, mode: int = 0o644) -> Path:
    """``queue.d/<uid>.jsonl`` under ``state`` holding ``text``, owned by ``uid`` with ``mode``
    (``queue.d`` made 1733 where it is not there yet), as a user's ``carbond submit`` leaves it."""
    spool = state / "queue.d"
    spool.mkdir(mode=0o1733, exist_ok=True)
    path = spool / f"{uid}.jsonl"
    path.write_text(text)
    os.chown(path, uid, uid)
    path.chmod(mode)
    return path


def make_service(
    state_dir: Path,
    executor: RecordingExecutor,
    *,
    policy: str = "run-now",
    regions: tuple[RegionSettings, ...] = PAPER_REGIONS,
    ledger: Ledger | None = None,
    **queue_kw: Any,
) -> Service:
    """A Service over ``state_dir`` with the paper's regions and a recording executor."""
    settings = Settings(state_dir=state_dir, regions=regions, policy={"name": policy})
    ledger = ledger or Ledger.open(state_dir / "ledger.db")
    queue = Queue(state_dir, ledger, known_regions=[r.name for r in regions], **queue_kw)
    return Service(
        settings=settings,
        ledger=ledger,
        queue=queue,
        executors={executor.name: executor},
        inventory=build_inventory(regions),
        intensity=EmbeddedIntensity(),
        policy=get_policy(policy),
    )


def backtest_trace(path: Path, start: datetime) -> Path:
    """``path``: 20 days of hourly intensity for zone ``XX`` from ``start`` (the columns
    ``datetime,zone,carbon_intensity_g_per_kwh``), a daily ramp from 200 g/kWh towards 280 with
    a little fixed noise: enough for ``carbond forecast backtest`` to score every horizon."""
    lines = ["datetime,zone,carbon_intensity_g_per_kwh"]
    for k in range(24 * 20):
        value = 200 + 80 * ((k % 24) / 24) + (k * 7919 % 13)
        lines.append(f"{(start + timedelta(hours=k)).isoformat()},XX,{value}")
    path.write_text("\n".join(lines) + "\n")
    return path
