"""Region, policy, interval and queue settings: TOML and env, one line per problem, exit 2."""

from __future__ import annotations

from pathlib import Path

import pytest

from daemon.cli import main
from daemon.inventory import build_inventory
from daemon.settings import ConfigError, load_settings

GOOD = """
state_dir = "{state}"

[policy]
name = "carbon-window"
params = {{ slot_s = 900 }}

[intervals]
plan_s = 60

[[regions]]
name = "qc"
zone = "CA-QC"
gpus = ["T4"]

[[regions]]
name = "ciso"
zone = "US-CAL-CISO"
pue = 1.2
gpus = ["RTX6000-Ada", "rtx-6000-ada"]
"""


def test_regions_from_toml_become_devices(tmp_path: Path) -> None:
    config = tmp_path / "carbond.toml"
    config.write_text(GOOD.format(state=tmp_path))
    settings = load_settings(config)
    assert [r.name for r in settings.regions] == ["qc", "ciso"]
    assert settings.policy.params == {"slot_s": 900}
    assert (settings.intervals.ingest_s, settings.intervals.plan_s) == (2.0, 60.0)
    devices = [gpu.device for gpu in build_inventory(settings.regions)]
    assert [(d.device_id, d.gpu.name, d.pue) for d in devices] == [
        ("qc/0", "T4", 1.0), ("ciso/0", "RTX6000-Ada", 1.2), ("ciso/1", "RTX6000-Ada", 1.2),
    ]  # fmt: skip


def test_regions_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CARBOND_REGIONS", '[{"name": "x", "zone": "DE", "gpus": ["H100"]}]')
    monkeypatch.setenv("CARBOND_POLICY__NAME", "run-now")
    settings = load_settings(None)
    assert settings.regions[0].gpus == ("H100",)
    assert settings.policy.name == "run-now"


BAD = """
[intervals]
ingest_s = 10

[[regions]]
name = "qc"
zone = "CA-QC"
gpus = ["Voodoo2"]

[[regions]]
name = "qc"
zone = "CA-QC"
pue = 0.5
colour = "red"

[[regions]]
name = "x"
zone = "DE"
gpus = "discovr"
"""


def test_every_problem_is_one_line(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text(BAD)
    with pytest.raises(ConfigError) as info:
        load_settings(config)
    problems = info.value.problems
    assert any("intervals.ingest_s" in p for p in problems)
    # the two regions named "qc" are named by their place: the name names neither
    assert any("regions.0.gpus" in p and "unknown GPU 'Voodoo2'" in p for p in problems)
    assert any("regions.1.pue" in p for p in problems)
    assert any("regions.1.colour" in p for p in problems)
    assert [p for p in problems if "regions.x" in p or "regions.2" in p] == [
        f'{config}:19: regions.x.gpus: must be "discover" or a list of GPU catalog '
        "names, got 'discovr'"
    ]
    assert all(p.startswith(str(config)) for p in problems)


def test_duplicate_region_names(tmp_path: Path) -> None:
    config = tmp_path / "dup.toml"
    config.write_text(
        '[[regions]]\nname = "a"\nzone = "DE"\n[[regions]]\nname = "a"\nzone = "FR"\n'
    )
    with pytest.raises(ConfigError, match="duplicate region name 'a'"):
        load_settings(config)


def test_one_regions_table_says_to_write_double_brackets(tmp_path: Path) -> None:
    """``[regions]`` (one table, single brackets) for ``[[regions]]`` read "regions: Input
    should be a valid tuple", words of pydantic's; it now says what to write."""
    config = tmp_path / "one.toml"
    config.write_text('[regions]\nname = "a"\nzone = "DE"\ngpus = ["T4"]\n')
    with pytest.raises(ConfigError) as info:
        load_settings(config)
    assert info.value.problems == [
        f"{config}:1: regions: a list of tables: write [[regions]] (double brackets) above each "
        "region, not [regions]"
    ]


def test_each_duplicate_region_name_is_named_at_its_own_line(tmp_path: Path) -> None:
    # was one line at the first [[regions]] ('dup.toml:1: regions: duplicate region names:
    # a, b'), sending the operator to a table that is not the one to rename
    config = tmp_path / "dup.toml"
    config.write_text(
        '[[regions]]\nname = "a"\nzone = "DE"\n\n'
        '[[regions]]\nname = "b"\nzone = "FR"\n\n'
        '[[regions]]\nzone = "FR"\nname = "a"\n'
        '[[regions]]\nname = "b"\nzone = "PL"\n'
    )
    with pytest.raises(ConfigError) as info:
        load_settings(config)
    assert info.value.problems == [
        f"{config}:11: regions.2.name: duplicate region name 'a' (also regions.0)",
        f"{config}:13: regions.3.name: duplicate region name 'b' (also regions.1)",
    ]


@pytest.mark.parametrize("value", ["0", "-5", '"many"', "1000001"])
def test_a_bad_plan_window_is_one_line_naming_it(tmp_path: Path, value: str) -> None:
    config = tmp_path / "window.toml"
    config.write_text(f'[policy]\nname = "run-now"\nplan_window = {value}\n')
    with pytest.raises(ConfigError) as info:
        load_settings(config)
    assert len(info.value.problems) == 1
    assert info.value.problems[0].startswith(f"{config}:3: policy.plan_window: ")


def test_the_plan_window_is_read(tmp_path: Path) -> None:
    config = tmp_path / "window.toml"
    config.write_text('[policy]\nname = "run-now"\nplan_window = 250\n')
    assert load_settings(config).policy.plan_window == 250


def test_invalid_config_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "bad.toml"
    config.write_text(BAD)
    assert main(["jobs", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("carbond: error: invalid configuration:")
    assert "regions.1.pue" in err


def test_an_unknown_executor_is_named_at_its_line(tmp_path: Path) -> None:
    # was a valid config (doctor's config check passed) that `carbond run` refused as
    # 'regions use executor(s) lokal but only local, simulated exist': no file, line or field
    config = tmp_path / "executor.toml"
    config.write_text(
        '[[regions]]\nname = "a"\nzone = "DE"\ngpus = ["T4"]\n\n'
        '[[regions]]\nname = "b"\nzone = "FR"\nexecutor = "lokal"\ngpus = ["T4"]\n'
    )
    with pytest.raises(ConfigError) as info:
        load_settings(config)
    assert info.value.problems == [
        f"{config}:9: regions.b.executor: Input should be 'local', 'simulated' or 'slurm'"
    ]


def test_a_region_field_is_named_by_the_region_name_as_a_site_field_is(tmp_path: Path) -> None:
    """``regions.1.pue`` named a region by its place while its site's fields were named by
    the region (``regions.b.site.pv_kwp``): both name the region now, with the line."""
    config = tmp_path / "named.toml"
    config.write_text(
        '[[regions]]\nname = "a"\nzone = "DE"\n\n[[regions]]\nname = "b"\nzone = "FR"\n'
        'pue = 9.0\n\n[regions.site]\npv_kwp = -1.0\n\n[[regions]]\nzone = "PL"\npue = 0.5\n'
    )
    with pytest.raises(ConfigError) as info:
        load_settings(config)
    assert info.value.problems == [
        f"{config}:8: regions.b.pue: Input should be less than or equal to 3",
        f"{config}:11: regions.b.site.pv_kwp: Input should be greater than or equal to 0",
        f"{config}:13: regions.2.name: Field required",  # no name: its place
        f"{config}:15: regions.2.pue: Input should be greater than or equal to 1",
    ]


@pytest.mark.parametrize(
    ("tail", "problem"),
    [  # each was at line 5, the [[regions]] header of the second region, as 'regions.1'
        ('executor = "slurm"\n',
         '9: regions.b.executor: region b: executor = "slurm" needs a [regions.slurm] table'),
        ('[regions.slurm]\npartition = "gpu"\n',
         '9: regions.b.slurm: region b: a [regions.slurm] table needs executor = "slurm"'),
        # the site's by its region's name, at the key's line, not the table's
        ("[regions.site]\nother_load_w = 5\nother_load_csv = 'load.csv'\n",
         "11: regions.b.site.other_load_csv: other_load_w and other_load_csv both set"),
        ("[regions.site]\npv_kwp = 5\n", "10: regions.b.site.pv_kwp: pv_kwp needs latitude"),
        ("[regions.site.battery]\ncapacity_kwh = 1\ncharge_power_w = 1\ndischarge_power_w = 1\n"
         "min_soc = 0.8\n", "13: regions.b.site.battery.min_soc: initial_soc 0.5 is below "),
        ("[regions.site.battery]\ncapacity_kwh = 1\ncharge_power_w = 1\ndischarge_power_w = 1\n"
         "initial_soc = 0.05\n", "13: regions.b.site.battery.initial_soc: initial_soc 0.05 is "),
    ],
)  # fmt: skip
def test_a_problem_between_fields_is_named_at_the_key_that_makes_it(
    tmp_path: Path, tail: str, problem: str
) -> None:
    config = tmp_path / "cross.toml"
    config.write_text(
        '[[regions]]\nname = "a"\nzone = "DE"\ngpus = ["T4"]\n'
        f'[[regions]]\nname = "b"\nzone = "FR"\ngpus = ["T4"]\n{tail}'
    )
    with pytest.raises(ConfigError) as info:
        load_settings(config)
    assert len(info.value.problems) == 1
    assert info.value.problems[0].startswith(f"{config}:{problem}")


_SLURM_REGION = '[[regions]]\nname = "b"\nzone = "FR"\nexecutor = "slurm"\n\n[regions.slurm]\n'


@pytest.mark.parametrize(
    "option",
    ["--gpus=2", "--gpus-per-node=1", "--gpus-per-n=1", "--gres=gpu:2", "-G2", "-G 2", "-vG1",
     "--tres-per-task=gres/gpu:1", "--tres-per-t=cpu:2,gres/gpu:t4:1"],
)  # fmt: skip
def test_an_sbatch_option_that_asks_gpus_is_refused_at_its_line(
    tmp_path: Path, option: str
) -> None:
    """A region whose ``sbatch_options`` asked GPUs as well (``--gpus=2``) loaded, and then
    Slurm refused its jobs (a typed ``--gres`` with an untyped ``--gpus``), or refused the
    ``scontrol update ... Gres=`` of a new plan, so the job's start was not moved. Such an
    option is a settings problem now, at its line, saying why."""
    config = tmp_path / "gpus.toml"
    config.write_text(
        f'{_SLURM_REGION}partition = "gpu"\nsbatch_options = ["--mem=4G", "{option}"]\n'
    )
    with pytest.raises(ConfigError) as info:
        load_settings(config)
    assert info.value.problems == [
        f"{config}:8: regions.b.slurm.sbatch_options: {option!r} sets the job's GPUs, which "
        "carbond asks itself (--gres from its plan, updated in place when a plan moves the "
        "job; Slurm refuses the job, or that update, with both): leave it out"
    ]


@pytest.mark.parametrize("option", ["--array=0-3", "--array 0-3", "--ar=1,2", "-a0-3", "-va1"])
def test_an_sbatch_option_that_makes_an_array_is_refused_at_its_line(
    tmp_path: Path, option: str
) -> None:
    """A region whose ``sbatch_options`` gave ``--array`` loaded, and then each carbond job
    was submitted as a job array, whose tasks carbond's lookup by id or name does not find.
    Such an option is a settings problem now, at its line, saying why."""
    config = tmp_path / "array.toml"
    config.write_text(f'{_SLURM_REGION}partition = "gpu"\nsbatch_options = ["{option}"]\n')
    with pytest.raises(ConfigError) as info:
        load_settings(config)
    assert info.value.problems == [
        f"{config}:8: regions.b.slurm.sbatch_options: {option!r} would make carbond's job a "
        "job array: carbond submits one Slurm job per request and follows it by its id or "
        "name, which array tasks are not found by: leave it out"
    ]


def test_sbatch_options_about_gpus_that_ask_none_are_kept(tmp_path: Path) -> None:
    """Options that only qualify the GPUs carbond asks (binding, memory or CPUs per GPU) or
    merely start like one (``--gres-flags``) are passed as they were."""
    options = ("--gres-flags=enforce-binding", "--gpu-bind=closest", "--mem-per-gpu=8G",
               "--cpus-per-gpu=4", "--gpu-freq=high", "-v", "--tres-per-task=cpu:4",
               "--acctg-freq=30", "-Aresearch")  # fmt: skip
    config = tmp_path / "kept.toml"
    listed = ", ".join(f'"{o}"' for o in options)
    config.write_text(f'{_SLURM_REGION}partition = "gpu"\nsbatch_options = [{listed}]\n')
    [region] = load_settings(config).regions
    assert region.slurm is not None and region.slurm.sbatch_options == options
