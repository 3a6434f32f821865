"""What a first-time operator trips over, refused at once in one line (exit 2): a daemon with no
region, a misspelt policy, a bad value in a ``CARBOND_*`` variable (named, with its value)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from daemon.cli import main
from daemon.cli.run_cmd import missing_regions, restart_only_changes
from daemon.replay.cluster import load_cluster
from daemon.replay.errors import ReplayInputError
from daemon.settings import (
    ConfigError,
    ExecutorSettings,
    IntervalSettings,
    LocalExecutorSettings,
    MetricsSettings,
    Settings,
    load_settings,
)
from tests.daemon.helpers import PAPER_REGIONS

REGION = '[[regions]]\nname = "qc"\nzone = "CA-QC"\ngpus = ["T4"]\n'


def _config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "carbond.toml"
    path.write_text(f'state_dir = "{tmp_path}"\n{text}')
    return path


def test_run_without_regions_refuses_to_start(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _config(tmp_path, "")
    assert main(["run", "--config", str(config)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err == (
        f"carbond: error: no [[regions]] configured ({config}): the daemon would accept jobs and "
        "fail every one; declare at least one region (name, zone, executor, gpus) as in "
        "carbond.example.toml\n"
    )
    assert not (tmp_path / "ledger.db").exists()  # refused before touching the state dir


def test_run_refuses_two_local_regions_on_one_gpu_of_this_node(tmp_path: Path) -> None:
    """``carbond run`` started them, planning qc's T4 and ca's first GPU as two while both
    regions' jobs ran on this node's GPU 0 at once; doctor alone said so. It now refuses the
    config at the second local region's ``[[regions]]`` line, before the state dir."""
    config = _config(
        tmp_path,
        REGION + '[[regions]]\nname = "sim"\nzone = "DE"\nexecutor = "simulated"\n'
        'gpus = ["T4"]\n[[regions]]\nname = "ca"\nzone = "US-CAL-CISO"\n'
        'gpus = ["RTX6000-Ada", "RTX6000-Ada"]\n',
    )
    line = config.read_text().splitlines().index('name = "ca"')  # the [[regions]] above it
    # a process, so that a daemon that starts fails the test instead of running on
    done = subprocess.run(
        [sys.executable, "-m", "daemon", "run", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "NOTIFY_SOCKET": ""},
    )
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == (
        f"carbond: error: invalid configuration:\n  {config}:{line}: regions.ca: local regions "
        "claim the same GPU of this node (list position = CUDA index): GPU 0: qc, ca; each job "
        "of either would run on it, two at once, planned and charged as separate GPUs: give "
        "each GPU of this node to one local region (a region elsewhere runs on slurm)\n"
    )
    assert not (tmp_path / "ledger.db").exists()


def test_a_reload_without_regions_is_refused_too() -> None:
    assert missing_regions(Settings(regions=PAPER_REGIONS), None) is None
    problem = missing_regions(Settings(), None)
    assert problem is not None and "no config file, no CARBOND_REGIONS" in problem


@pytest.mark.parametrize(
    ("policy", "expected"),
    [  # each at its key's line, not the [policy] header's (line 6, field 'policy', before)
        (
            'name = "carbon-windw"',
            "7: policy.name: unknown policy 'carbon-windw' (known: ",
        ),
        (
            'name = "carbon-window"\nparams = { slot = 5 }',
            "8: policy.params: carbon-window: unknown parameter(s) slot",
        ),
        (
            'name = "carbon-window"\n\n[policy.params]\nslot_s = 900\nslot = 5',
            "9: policy.params: carbon-window: unknown parameter(s) slot",
        ),
        (  # these two started the daemon, which failed in its first plan
            'name = "run-now"\nparams = { lifetime_years = "5" }',
            "8: policy.params: invalid parameter lifetime_years='5': not a number",
        ),
        (
            'name = "spatial"\nparams = { alternatives = 2.5 }',
            "8: policy.params: invalid parameter alternatives=2.5: not a whole number",
        ),
    ],
)
def test_a_misspelt_policy_or_parameter_refuses_to_start(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], policy: str, expected: str
) -> None:
    config = _config(tmp_path, f"{REGION}[policy]\n{policy}\n")
    assert main(["run", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert f"  {config}:{expected}" in err
    assert not (tmp_path / "ledger.db").exists()


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("CARBOND_GPU__SAMPLE_PERIOD_S", "-1",
         "environment variable CARBOND_GPU__SAMPLE_PERIOD_S='-1': gpu.sample_period_s: "
         "Input should be greater than 0"),
        ("CARBOND_POLICY__NAME", "carbon-windw",
         "environment variable CARBOND_POLICY__NAME='carbon-windw': policy.name: unknown "
         "policy"),
        ("CARBOND_REGIONS", '[{"name": "x", "zone": "DE", "gpus": ["Voodoo2"]}]',
         "environment variable CARBOND_REGIONS (at 0.gpus: [\"Voodoo2\"]): regions.0.gpus: "
         "unknown GPU"),
        ("CARBOND_METRICS", '{"port": "x"}',
         "environment variable CARBOND_METRICS (at port: \"x\"): metrics.port: Input should be a "
         "valid "
         "integer"),
        ("CARBOND_REGIONS", "[{", "environment variable CARBOND_REGIONS='[{': not valid JSON"),
        ("CARBOND_REGIONS", '[{"name": "x"}]',
         "environment variable CARBOND_REGIONS (at 0: {\"name\": \"x\"}): regions.0.zone: "
         "Field required"),
        ("CARBOND_REGIONS", '[{"name": "x", "zone": "DE", "gpus": ["T4"]}, '
         '{"name": "x", "zone": "FR", "gpus": ["T4"]}]',
         "environment variable CARBOND_REGIONS (at 1.name: \"x\"): regions.1.name: "
         "duplicate region name 'x' (also regions.0)"),
        ("CARBOND_ELECTRICITYMAPS__TOKEN", "", ""),  # valid: no problem to report
    ],
)  # fmt: skip
def test_a_bad_environment_variable_is_named_with_its_value_not_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, variable: str, value: str, expected: str
) -> None:
    config = _config(tmp_path, REGION)
    monkeypatch.setenv(variable, value)
    if not expected:
        load_settings(config)
        return
    with pytest.raises(ConfigError) as info:
        load_settings(config)
    [problem] = info.value.problems
    assert problem.startswith(expected), problem
    assert str(config) not in problem


def test_a_bad_value_from_the_file_still_names_the_file(tmp_path: Path) -> None:
    config = _config(tmp_path, "[gpu]\nsample_period_s = -1\n")
    with pytest.raises(ConfigError) as info:
        load_settings(config)
    assert info.value.problems == [
        f"{config}:3: gpu.sample_period_s: Input should be greater than 0"
    ]


@pytest.mark.parametrize("text", ['{"token": "s3cr3t-value", "max_retries": "x"', "s3cr3t-value"])
def test_a_section_that_holds_the_token_is_never_shown(
    monkeypatch: pytest.MonkeyPatch, text: str
) -> None:
    monkeypatch.setenv("CARBOND_ELECTRICITYMAPS", text)  # not valid JSON
    with pytest.raises(ConfigError) as info:
        load_settings(None)
    [problem] = info.value.problems
    assert problem.startswith("environment variable CARBOND_ELECTRICITYMAPS=<hidden>: not valid")
    assert "s3cr3t" not in problem


def test_a_secret_in_a_variable_is_never_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CARBOND_ELECTRICITYMAPS", '{"token": 12345}')  # not a string
    with pytest.raises(ConfigError) as info:
        load_settings(None)
    [problem] = info.value.problems
    assert "12345" not in problem and "<hidden>" in problem


@pytest.mark.parametrize("token", ["sk\u2019s3cr3t", "s3cr3t\u20ac", "s3\x01cr3t"])
def test_a_token_no_http_header_can_carry_is_refused_without_showing_it(
    monkeypatch: pytest.MonkeyPatch, token: str
) -> None:
    """A token with a character outside printable ASCII (a curly quote pasted from a page)
    was taken: every request then failed in ``http.client``, and ``carbond intensity``
    printed a traceback."""
    monkeypatch.setenv("CARBOND_ELECTRICITYMAPS__TOKEN", token)
    with pytest.raises(ConfigError) as info:
        load_settings(None)
    [problem] = info.value.problems
    assert "s3cr3t" not in problem and "<hidden>" in problem
    assert "printable ASCII" in problem


def test_an_empty_state_dir_is_refused_not_read_as_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = _config(tmp_path, REGION)
    monkeypatch.setenv("CARBOND_STATE_DIR", "")
    with pytest.raises(ConfigError) as info:
        load_settings(config)
    assert info.value.problems == [
        "environment variable CARBOND_STATE_DIR='': state_dir: must not be empty (the queue, "
        "the ledger and the job logs live there)"
    ]


def test_a_relative_state_dir_is_made_absolute_where_carbond_starts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The job wrapper runs from "/": a relative state dir would fail every local job."""
    monkeypatch.chdir(tmp_path)
    assert load_settings(None, state_dir=Path("state")).state_dir == tmp_path / "state"
    monkeypatch.setenv("CARBOND_STATE_DIR", "other/../state2")
    assert load_settings(None).state_dir == tmp_path / "state2"


def test_a_reload_names_the_sections_that_need_a_restart() -> None:
    started = Settings(regions=PAPER_REGIONS)
    new = Settings(
        regions=PAPER_REGIONS[:1],
        metrics=MetricsSettings(port=9999),
        executors=ExecutorSettings(local=LocalExecutorSettings(grace_s=5)),
        intervals=IntervalSettings(plan_s=60),
    )
    assert restart_only_changes(started, new) == ["metrics", "executors"]
    assert restart_only_changes(started, Settings(regions=PAPER_REGIONS[:1])) == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [('[policy]\nname = carbon-window\n', ":3: not valid TOML: Invalid value (column 8)"),
     (REGION + 'gpus = ["T4"]\n', ":6: not valid TOML: Cannot overwrite a value (column 14)"),
     ('[[regions]]\ngpus = ["T4"\n', ": not valid TOML: Unclosed array (at the end of the file)")],
)  # fmt: skip
def test_a_toml_syntax_error_is_named_as_a_bad_value_is(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, expected: str
) -> None:
    """An unquoted string said ``carbond.toml: Invalid value (at line 3, column 8)``: not
    ``FILE:LINE:`` as every other config problem (so an editor or ``grep -n`` user cannot jump
    to it), nor that the file is not TOML at all. ``run`` and the commands that read the
    config say the file, the line and what is wrong with it; a cluster file too."""
    config = _config(tmp_path, text)
    assert main(["run", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert err == f"carbond: error: invalid configuration:\n  {config}{expected}\n"
    assert main(["jobs", "--config", str(config)]) == 2
    assert capsys.readouterr().err.endswith(f"  {config}{expected}\n")
    with pytest.raises(ReplayInputError, match=re.escape(f"{config}{expected}")):
        load_cluster(config)


def test_a_config_path_that_is_a_folder_or_not_text_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--config /etc/carbond`` (the folder) said ``config file not found``, though it is
    right there; a binary file gave Python's ``'utf-8' codec can't decode byte 0xff in
    position 0: invalid start byte``. Each now says what the path is, as ``submit --file``
    does."""
    folder = tmp_path / "carbond"
    folder.mkdir()
    assert main(["run", "--config", str(folder)]) == 2
    assert capsys.readouterr().err.endswith(f"  {folder}: a folder, not a config file\n")
    monkeypatch.setenv("CARBOND_CONFIG", str(folder))
    assert main(["doctor"]) == 1
    assert f"{folder}: a folder, not a config file (from CARBOND_CONFIG)" in capsys.readouterr().out
    monkeypatch.delenv("CARBOND_CONFIG")
    binary = tmp_path / "carbond.toml"
    binary.write_bytes(b'state_dir = "/tmp/x"\n\xff\xfe')
    assert main(["run", "--config", str(binary)]) == 2
    assert capsys.readouterr().err.endswith(f"  {binary}: not UTF-8 text (byte 21)\n")
    missing = tmp_path / "absent.toml"
    assert main(["run", "--config", str(missing)]) == 2
    assert capsys.readouterr().err.endswith(f"  {missing}: config file not found\n")


def test_a_config_path_that_is_there_but_no_file_says_what_it_is(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--config /dev/null`` (an operator's "no config") said ``config file not found``,
    though it is right there; so did a link whose target is gone."""
    assert main(["jobs", "--config", os.devnull]) == 2
    assert capsys.readouterr().err.endswith(
        f"  {os.devnull}: a character device, not a config file\n"
    )
    fifo = tmp_path / "carbond.toml"
    os.mkfifo(fifo)
    assert main(["jobs", "--config", str(fifo)]) == 2
    assert capsys.readouterr().err.endswith(f"  {fifo}: a FIFO, not a config file\n")
    dangling = tmp_path / "linked.toml"
    dangling.symlink_to(tmp_path / "gone.toml")
    assert main(["jobs", "--config", str(dangling)]) == 2
    assert capsys.readouterr().err.endswith(
        f"  {dangling}: a symlink to nothing, not a config file\n"
    )


@pytest.mark.parametrize("url", ["api.electricitymaps.com/v3", "ftp://em.example/v3", "https://"])
def test_an_electricity_maps_url_without_its_scheme_or_host_is_refused(
    tmp_path: Path, url: str
) -> None:
    """Such a base_url passed doctor; every request then failed (``MissingSchema``,
    ``InvalidSchema``) and the daemon planned on static annual averages, noting why only in
    the intensity notes."""
    config = _config(tmp_path, f'{REGION}[electricitymaps]\nbase_url = "{url}"\n')
    with pytest.raises(ConfigError) as info:
        load_settings(config)
    assert info.value.problems == [
        f"{config}:7: electricitymaps.base_url: must be an http(s) URL such as "
        f"'https://api.electricitymaps.com/v3', got {url!r}"
    ]


@pytest.mark.parametrize(
    "url", ["http://api.electricitymaps.com/v3", "http://10.0.0.5:8080/v3", "http://127.example/v3"]
)
def test_an_electricity_maps_url_that_sends_the_token_in_clear_text_is_refused(
    tmp_path: Path, url: str
) -> None:
    """An ``http://`` base_url to another host was taken: the token then crossed the network
    in clear text in every request's ``auth-token`` header."""
    config = _config(tmp_path, f'{REGION}[electricitymaps]\nbase_url = "{url}"\n')
    with pytest.raises(ConfigError) as info:
        load_settings(config)
    assert info.value.problems == [
        f"{config}:7: electricitymaps.base_url: must be https (the token would cross the "
        "network in clear text), or http to this machine (localhost, 127.0.0.1, ::1), "
        f"got {url!r}"
    ]


@pytest.mark.parametrize(
    "url",
    [
        "https://em.example/v3",
        "http://127.0.0.1:8080/v3",
        "http://127.3.4.5/v3",
        "http://localhost:9/v3",
        "http://[::1]:8080/v3",
    ],
)
def test_an_electricity_maps_url_over_https_or_to_this_machine_is_taken(
    tmp_path: Path, url: str
) -> None:
    config = _config(tmp_path, f'{REGION}[electricitymaps]\nbase_url = "{url}"\n')
    assert load_settings(config).electricitymaps.base_url == url


@pytest.mark.parametrize(
    "url", ["http://alice:s3cret@em.example/v3", "http://alice:s3@cret@em.example/v3"]
)
def test_a_password_in_the_electricity_maps_url_is_never_shown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, url: str
) -> None:
    """``user:password@`` in a refused base_url was echoed in the problem line, from the file
    or from ``CARBOND_ELECTRICITYMAPS__BASE_URL``'s value."""
    config = _config(tmp_path, f'{REGION}[electricitymaps]\nbase_url = "{url}"\n')
    with pytest.raises(ConfigError) as info:
        load_settings(config)
    (line,) = info.value.problems
    assert "cret" not in line and "alice" not in line
    assert line.endswith("got 'http://***@em.example/v3'")
    monkeypatch.setenv("CARBOND_ELECTRICITYMAPS__BASE_URL", url)
    with pytest.raises(ConfigError) as info:
        load_settings(_config(tmp_path, REGION))
    (line,) = info.value.problems
    assert "cret" not in line and "alice" not in line
    assert line.startswith(
        "environment variable CARBOND_ELECTRICITYMAPS__BASE_URL='http://***@em.example/v3': "
        "electricitymaps.base_url: must be https"
    )
