"""Queue-line validation: every bad field is named, good lines are normalised."""

from __future__ import annotations

import json
import math
import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from daemon.queue.job_request import CancelRequest, JobRequest
from daemon.queue.line import parse_deadline, parse_line
from daemon.queue.reasons import InvalidLineError

NOW = datetime(2024, 6, 1, 12, tzinfo=UTC)
GOOD: dict[str, Any] = {"model": "llama-1b", "command": ["python", "run.py"]}


def _with(**fields: Any) -> str:
    record = dict(GOOD)
    record.update(fields)
    return json.dumps({k: v for k, v in record.items() if v is not ...})


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (b"\xff\xfe", "not UTF-8"),
        ("{not json", "not JSON"),
        ("[1, 2]", "must be a JSON object, got list"),
        ('"text"', "must be a JSON object, got str"),
        (_with(command="ls -l"), "field 'command': must be an argv list"),
        (_with(command=[]), "field 'command'"),
        (_with(command=...), "field 'command': Field required"),
        (_with(command=["", "x"]), "field 'command': the program (first item) is empty"),
        (_with(command=["ls", 3]), "field 'command.1'"),
        # a lone surrogate (a JSON escape) is not Unicode text: "\\ud800" failed the job's
        # start without a status; "\\udcff" in a program not found wedged the daemon (SQLite
        # could not store how it ended)
        (
            _with(command=["/bin/echo", "\ud800"]),
            "field 'command': item 1 is not Unicode text: '\\ud800'",
        ),
        (_with(command=["/bin/ech\udcff"]), "field 'command': item 0 is not Unicode text"),
        (_with(tags=["ok", "\udcff"]), "field 'tags': item 1 is not Unicode text"),
        (_with(regions=["\udcff"]), "field 'regions': item 0 is not Unicode text"),
        (_with(model="gpt-17"), "field 'model': unknown model 'gpt-17'"),
        (_with(model=..., params_b=None), "field 'model': give exactly one of"),
        (_with(params_b=7), "field 'model': give exactly one of"),
        (_with(model=..., params_b=-1), "field 'params_b'"),
        # NaN was "Input should be less than or equal to 10000"
        (_with(model=..., params_b=math.nan), "field 'params_b': Input should be a finite number"),
        (_with(input_tokens=-1), "field 'input_tokens'"),
        (_with(input_tokens="12"), "field 'input_tokens'"),
        (_with(output_tokens=0), "field 'output_tokens'"),
        (_with(requests=0), "field 'requests'"),
        (_with(batch_size=0), "field 'batch_size'"),
        (_with(batch_size=1.5), "field 'batch_size'"),
        (_with(tensor_parallel=0), "field 'tensor_parallel'"),
        # vLLM shards whole heads: Llama 3.2 1B's 32 query and 8 KV heads do not split in 3
        (
            _with(tensor_parallel=3),
            "field 'tensor_parallel': llama-3.2-1b's 32 attention "
            "heads (8 KV heads) do not split over 3 GPUs",
        ),
        (_with(deadline="tomorrow"), "field 'deadline': deadline 'tomorrow' is neither"),
        (
            _with(deadline="2024-06-02T00:00:00"),
            "field 'deadline': deadline '2024-06-02T00:00:00' has no UTC offset",
        ),
        (_with(regions="qc"), "field 'regions'"),
        (_with(regions=["mars"]), "field 'regions': unknown region 'mars'"),
        (_with(gpu_types=["Voodoo2"]), "field 'gpu_types': unknown GPU 'Voodoo2'"),
        (_with(min_gpu_memory_gb=-4), "field 'min_gpu_memory_gb'"),
        # JSON has no Infinity: submit --min-gpu-memory-gb inf appended a line jq cannot read
        (
            _with(min_gpu_memory_gb=math.inf),
            "field 'min_gpu_memory_gb': Input should be a finite number",
        ),
        (
            _with(min_gpu_memory_gb=math.nan),
            "field 'min_gpu_memory_gb': Input should be a finite number",
        ),
        (_with(priority="high"), "field 'priority'"),
        (_with(tags=[1]), "field 'tags.0'"),
        (_with(precision="fp12"), "field 'precision': unknown precision 'fp12'"),
        (_with(runtime="tgi"), "field 'runtime': unknown runtime 'tgi'"),
        (_with(id="has space"), "field 'id'"),
        (_with(colour="red"), "field 'colour': unknown field"),
        (_with(cwd="work/dir"), "field 'cwd': must be an absolute path, got 'work/dir'"),
        (_with(cwd=["/tmp"]), "field 'cwd'"),
        (_with(cwd="/tmp/\u0000x"), "field 'cwd': contains a NUL byte"),
        ('{"cancel": 3}', "field 'cancel'"),
        ('{"cancel": "j1", "model": "x"}', "field 'cancel'"),
    ],
)
def test_bad_lines_name_the_field(line: str | bytes, expected: str) -> None:
    with pytest.raises(InvalidLineError) as info:
        parse_line(line, NOW, known_regions=["qc", "ciso"])
    assert expected in str(info.value)


def test_a_good_line_is_normalised_and_user_is_ignored() -> None:
    line = _with(
        id="batch-7", model="meta-llama/Llama-3.2-1B", deadline="+1d2h30m", user="root",
        gpu_types=["t4"], regions=["qc"], tags=["nightly"], precision="BF16", runtime="VLLM",
    )  # fmt: skip
    request = parse_line(line, NOW, known_regions=["qc"])
    assert isinstance(request, JobRequest)
    assert request.job_id == "batch-7"
    assert request.model == "llama-3.2-1b"
    assert request.gpu_types == ("T4",)
    assert request.precision == "bf16"
    assert request.runtime == "vllm"
    assert request.deadline == NOW + timedelta(days=1, hours=2, minutes=30)
    assert "user" not in request.to_json()
    assert JobRequest.from_json(request.to_json()) == request


@pytest.mark.parametrize(
    ("cwd", "stored"), [(..., None), ("/srv/jobs/", "/srv/jobs"), ("/srv/a/../b", "/srv/b")]
)
def test_the_working_directory_is_kept_absolute_and_normalised(
    cwd: object, stored: str | None
) -> None:
    request = parse_line(_with(cwd=cwd), NOW)
    assert isinstance(request, JobRequest)
    assert request.cwd == stored
    assert request.to_json()["cwd"] == stored
    assert JobRequest.from_json(request.to_json()) == request


def test_a_request_stored_before_cwd_existed_reads_back_without_one() -> None:
    request = parse_line(_with(), NOW)
    assert isinstance(request, JobRequest)
    stored = request.to_json()
    del stored["cwd"]
    assert JobRequest.from_json(stored).cwd is None


def test_params_b_instead_of_a_catalog_model() -> None:
    request = parse_line(_with(model=None, params_b=13.0), NOW)
    assert isinstance(request, JobRequest)
    assert (request.model, request.params_b) == (None, 13.0)


def test_cancel_line() -> None:
    assert parse_line('{"cancel": "j123"}', NOW) == CancelRequest("j123")


@pytest.mark.parametrize("job_id", ["j123\n", "j123\r", "", "-j", "j 1", "j" * 65])
def test_a_cancel_of_an_id_no_job_may_have_is_refused(job_id: str) -> None:
    """The id a job line may have (pydantic's full match of the pattern) is the only id a
    cancel line may name: ``re.match``'s ``$`` also matched before a final newline, so
    ``{"cancel": "j123\\n"}`` was read as a cancel of an id no job can have."""
    with pytest.raises(InvalidLineError, match="cancel"):
        parse_line(json.dumps({"cancel": job_id}), NOW)
    with pytest.raises(InvalidLineError):
        parse_line(_with(id=job_id), NOW)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("+8h", NOW + timedelta(hours=8)),
        ("+90s", NOW + timedelta(seconds=90)),
        ("+1d", NOW + timedelta(days=1)),
        ("2024-06-02T00:00:00Z", datetime(2024, 6, 2, tzinfo=UTC)),
        ("2024-06-02T02:00:00+02:00", datetime(2024, 6, 2, tzinfo=UTC)),
    ],
)
def test_deadlines(text: str, expected: datetime) -> None:
    assert parse_deadline(text, NOW) == expected


# "+١h" and "+８h" (Arabic-Indic, fullwidth digits) were read as "+1h" and "+8h": \d is Unicode
@pytest.mark.parametrize("text", ["+", "8h", "+8x", "2024-13-01T00:00:00Z", "+١h", "+８h"])
def test_bad_deadlines(text: str) -> None:
    with pytest.raises(ValueError, match="deadline"):
        parse_deadline(text, NOW)


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (_with(deadline="+9999999d"), "field 'deadline': deadline '+9999999d' is too far away"),
        (_with(deadline="+99999999999d"), "too far away"),
        (_with(deadline="0001-01-01T00:00:00+14:00"), "outside years 1-9999"),
        ('{"requests": ' + "9" * 5000 + "}", "not acceptable JSON"),
        ('{"command": ' + "[" * 20_000 + "]" * 20_000 + "}", "nested too deeply"),
    ],
)
def test_lines_that_overflow_python_are_invalid_lines(line: str, expected: str) -> None:
    """Each raised OverflowError, ValueError or RecursionError past parse_line before."""
    with pytest.raises(InvalidLineError, match=re.escape(expected)):
        parse_line(line, NOW)


def _shape(request: JobRequest) -> list[tuple[object, ...]]:
    """Every field's value with its type (a deadline's zone and fold too)."""
    fields = [(type(v), v) for v in request.to_json().values()]
    d = request.deadline
    return [*fields, (type(request.command), type(request.tags), type(request.min_gpu_memory_gb),
                      type(d), d and d.tzinfo, d and d.fold)]  # fmt: skip


_texts = st.text(max_size=8)
_tuples = st.lists(_texts, max_size=3).map(tuple)
_deadlines = st.none() | st.builds(
    datetime.replace,
    st.datetimes(timezones=st.sampled_from([UTC, timezone(timedelta(hours=2))])),
    fold=st.integers(0, 1),
)  # fmt: skip
_numbers = st.integers(-3, 10**20) | st.floats() | st.booleans()


@given(
    job_id=_texts, name=_texts, model=st.none() | _texts, params_b=st.none() | _numbers,
    tokens=_numbers, requests=st.none() | _numbers, deadline=_deadlines,
    command=_tuples | st.lists(_texts, max_size=2) | st.just((1,)), regions=_tuples,
    memory=_numbers, priority=_numbers, cwd=st.none() | _texts,
)  # fmt: skip
def test_a_plain_request_is_what_parsing_its_stored_json_rebuilds(
    job_id: str, name: str, model: str | None, params_b: Any, tokens: Any, requests: Any,
    deadline: datetime | None, command: tuple[str, ...], regions: tuple[str, ...], memory: Any,
    priority: Any, cwd: str | None,
) -> None:  # fmt: skip
    request = JobRequest(
        job_id=job_id, name=name, model=model, params_b=params_b, input_tokens=tokens,
        output_tokens=7, requests=requests, batch_size=8, tensor_parallel=1, deadline=deadline,
        command=command, regions=regions, gpu_types=("T4",), min_gpu_memory_gb=memory,
        priority=priority, tags=(), precision="fp16", runtime="vllm", cwd=cwd,
    )  # fmt: skip
    try:
        stored = json.dumps(request.to_json())
        rebuilt = JobRequest.from_json(json.loads(stored))
    except (TypeError, ValueError, OverflowError):  # e.g. int() of NaN: nothing to keep
        assert not request.is_plain()
        return
    if request.is_plain():
        assert rebuilt == request and _shape(rebuilt) == _shape(request)
    plain_types = (
        type(tokens) is type(priority) is int and type(memory) is float
        and math.isfinite(memory) and type(command) is tuple
        and (params_b is None or type(params_b) is int
             or (type(params_b) is float and math.isfinite(params_b)))
        and (requests is None or type(requests) is int)
        and (deadline is None or (deadline.tzinfo is UTC and deadline.fold == 0))
        and all(type(v) is str for v in command)
    )  # fmt: skip
    assert request.is_plain() == plain_types


def test_every_parsed_line_is_plain() -> None:
    request = parse_line(_with(deadline="2024-06-02T00:00:00+02:00", params_b=7, model=None), NOW)
    assert isinstance(request, JobRequest)
    assert not request.is_plain()  # no id yet: ingestion gives it one
    request = request.with_id("a")
    assert request.is_plain()
    assert not replace(request, priority=1.0).is_plain()  # type: ignore[arg-type]


def test_a_stand_in_of_a_size_takes_any_tensor_parallel_size() -> None:
    request = parse_line(_with(model=..., params_b=7, tensor_parallel=3), NOW)
    assert isinstance(request, JobRequest) and request.tensor_parallel == 3


_PRIVATE = "zzprivatezz"


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"model": _PRIVATE}, "model"),
        ({"gpu_types": [_PRIVATE]}, "gpu_types"),
        ({"precision": _PRIVATE}, "precision"),
        ({"runtime": _PRIVATE}, "runtime"),
        ({"cwd": f"{_PRIVATE}/dir"}, "cwd"),
        ({"deadline": _PRIVATE}, "deadline"),
        ({"regions": [_PRIVATE]}, "regions"),
        ({"tags": [f"\ud800{_PRIVATE}"]}, "tags"),
        ({_PRIVATE: 1}, "unknown field"),
    ],
)
def test_a_reasons_public_form_names_the_field_and_problem_but_quotes_nothing(
    fields: dict[str, Any], field: str
) -> None:
    """A refused line's reason quoted what the user wrote (``unknown model 'NAME'``, the
    ``cwd``, the deadline, an unknown field's name), and it went to the logs and to the
    world-readable ``rejected.jsonl`` for a line of a private file too. Its public form names
    the field and the problem without the text; the owner's message still quotes it."""
    with pytest.raises(InvalidLineError) as caught:
        parse_line(_with(**fields), NOW, known_regions=["us-east"])
    assert _PRIVATE in str(caught.value)
    assert _PRIVATE not in caught.value.public
    assert field in caught.value.public
