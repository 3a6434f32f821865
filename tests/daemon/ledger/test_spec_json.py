"""A job's stored request: a plain request's JSON, written field by field, is the text
``json.dumps(request.to_json())`` gives, and its row the one that text gives."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from daemon.ledger import Ledger
from daemon.ledger.spec_json import plain_spec_json
from daemon.queue.job_request import JobRequest
from tests.daemon.helpers import job_request

NOW = datetime(2024, 6, 1, tzinfo=UTC)

texts = st.text(max_size=12)  # any code point: quotes, backslashes, controls, non-ASCII
finite = st.floats(allow_nan=False, allow_infinity=False)
requests = st.builds(
    JobRequest,
    job_id=texts,
    name=texts,
    model=st.none() | texts,
    params_b=st.none() | st.integers() | finite,
    input_tokens=st.integers(),
    output_tokens=st.integers(),
    requests=st.none() | st.integers(),
    batch_size=st.integers(),
    tensor_parallel=st.integers(),
    deadline=st.none() | st.datetimes(timezones=st.just(UTC)).map(lambda d: d.replace(fold=0)),
    command=st.tuples(texts) | st.lists(texts, max_size=3).map(tuple),
    regions=st.lists(texts, max_size=3).map(tuple),
    gpu_types=st.lists(texts, max_size=3).map(tuple),
    min_gpu_memory_gb=finite,
    priority=st.integers(),
    tags=st.lists(texts, max_size=3).map(tuple),
    precision=texts,
    runtime=texts,
    cwd=st.none() | texts,
)


@given(requests)
def test_a_plain_requests_json_is_the_encoders(request: JobRequest) -> None:
    assert request.is_plain()
    spec = request.to_json()
    assert plain_spec_json(request) == (spec["deadline"], json.dumps(spec))


def test_stored_jobs_are_the_rows_of_their_encoded_requests(tmp_path: Path) -> None:
    base = job_request("a", NOW)
    added = [
        base,
        replace(base, job_id="b", name='quote " and é', deadline=None, params_b=7, cwd="/tmp"),
        replace(base, job_id="c", min_gpu_memory_gb=math.pi, tags=("x", "y"), model=None),
        replace(base, job_id="d", priority=True),  # not plain: encoded as before
        replace(base, job_id="e", deadline=NOW.astimezone(UTC) + timedelta(hours=2)),
    ]
    with Ledger.open(tmp_path / "ledger.db") as ledger:
        with ledger.transaction():
            ledger.add_jobs([(r, 1000, 1000, "q", NOW) for r in added])
        rows = {row["job_id"]: row for row in ledger.rows("jobs")}
    for request in added:
        assert request.job_id is not None
        spec = request.to_json()
        row = rows[request.job_id]
        assert (row["spec_json"], row["deadline"]) == (json.dumps(spec), spec["deadline"])
