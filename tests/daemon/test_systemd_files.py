"""The systemd files: the unit verifies, the snippets apply, the example config is complete."""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import sys
import tomllib
from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from daemon.settings import Settings, load_settings
from policies.footprint.embodied import ActParameters

ROOT = Path(__file__).resolve().parents[2]
SYSTEMD = ROOT / "systemd"


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} not installed (systemd >= 250 provides it); cannot check the files")
    return path


def _verify(unit: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [_tool("systemd-analyze"), "verify", str(unit)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _unit_copy(tmp_path: Path, text: str) -> Path:
    """The unit with ExecStart pointing at this checkout's ``carbond`` (verify checks it)."""
    carbond = Path(sys.executable).with_name("carbond")
    unit = tmp_path / "carbond.service"
    unit.write_text(text.replace("/opt/carbond/bin/carbond", str(carbond)))
    return unit


def test_the_unit_verifies_cleanly(tmp_path: Path) -> None:
    done = _verify(_unit_copy(tmp_path, (SYSTEMD / "carbond.service").read_text()))

    assert done.returncode == 0 and done.stderr == "", done.stderr


def test_verify_does_notice_a_broken_unit(tmp_path: Path) -> None:
    text = (SYSTEMD / "carbond.service").read_text().replace("Type=notify", "Type=notifyy")
    done = _verify(_unit_copy(tmp_path, text))

    assert "notifyy" in done.stderr


def _directives(text: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for line in text.splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, value = line.split("=", 1)
            found.setdefault(key.strip(), []).append(value.strip())
    return found


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("Type", "notify"),
        ("KillMode", "process"),  # running jobs survive a daemon restart
        ("StateDirectory", "carbond"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "read-only"),
        ("PrivateTmp", "yes"),
        ("NoNewPrivileges", "yes"),
        ("SystemCallFilter", "@system-service"),
        ("Restart", "on-failure"),
        ("LoadCredential", "electricitymaps__token:/etc/carbond/electricitymaps.token"),
        ("OOMScoreAdjust", "-500"),  # the OOM killer picks a job (its wrapper resets it to 0)
        ("Delegate", "yes"),  # each job in a cgroup of its own (daemon/executors/local_cgroup)
        ("ProtectControlGroups", "yes"),  # still: only the unit's own cgroup is writable
    ],
)
def test_the_unit_has_the_issue_s_settings(key: str, value: str) -> None:
    assert value in _directives((SYSTEMD / "carbond.service").read_text())[key]


def test_the_units_own_cgroup_is_all_it_may_write_of_the_cgroup_hierarchy() -> None:
    """Delegate=yes hands the unit its cgroup, but ProtectControlGroups=yes mounts
    /sys/fs/cgroup read-only for it: without its own cgroup in ReadWritePaths= the daemon
    could not make the jobs' cgroups. Nothing else of the hierarchy is opened."""
    unit = _directives((SYSTEMD / "carbond.service").read_text())
    paths = [p.lstrip("-") for line in unit["ReadWritePaths"] for p in line.split()]
    cgroups = sorted(p for p in paths if p.startswith("/sys/fs/cgroup"))
    assert cgroups == [
        "/sys/fs/cgroup/system.slice/carbond.service",
        "/sys/fs/cgroup/unified/system.slice/carbond.service",
    ]


def test_capabilities_are_only_what_running_jobs_as_users_needs() -> None:
    text = (SYSTEMD / "carbond.service").read_text()
    (caps,) = _directives(text)["CapabilityBoundingSet"]
    assert set(caps.split()) == {
        "CAP_SETUID", "CAP_SETGID", "CAP_KILL", "CAP_CHOWN", "CAP_FOWNER", "CAP_DAC_OVERRIDE",
    }  # fmt: skip
    for cap in caps.split():
        assert re.search(rf"#\s+{cap}\b", text), f"{cap} has no comment saying why"
    assert "WatchdogSec" in _directives(text)


def test_sysusers_and_tmpfiles_create_the_layout(tmp_path: Path) -> None:
    sysusers, tmpfiles = _tool("systemd-sysusers"), _tool("systemd-tmpfiles")
    if os.geteuid() != 0:
        pytest.skip("needs root: systemd-tmpfiles sets owners (run the suite as root)")
    (tmp_path / "etc").mkdir()
    for name in ("passwd", "group"):
        (tmp_path / "etc" / name).touch()
    for tool, conf in ((sysusers, "carbond.sysusers.conf"), (tmpfiles, "carbond.tmpfiles.conf")):
        args = [tool, f"--root={tmp_path}", str(SYSTEMD / conf)]
        if tool == tmpfiles:
            args.insert(1, "--create")
        done = subprocess.run(args, capture_output=True, text=True, timeout=60, check=False)
        assert done.returncode == 0, done.stderr

    assert "carbond:x:" in (tmp_path / "etc" / "group").read_text()
    modes = {
        "var/lib/carbond": 0o755,
        "var/lib/carbond/queue.d": 0o1733,
        "var/lib/carbond/logs": 0o751,
        "etc/carbond/electricitymaps.token": 0o600,
    }
    for path, mode in modes.items():
        assert stat.S_IMODE((tmp_path / path).stat().st_mode) == mode, path


def _keys(model: type[BaseModel], prefix: str = "") -> list[str]:
    keys = []
    for name, field in model.model_fields.items():
        annotation: Any = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            keys.extend(_keys(annotation, f"{prefix}{name}."))
        else:
            keys.append(f"{prefix}{name}")
    return keys


def test_the_example_config_loads_and_names_every_key(monkeypatch: pytest.MonkeyPatch) -> None:
    example = SYSTEMD / "carbond.example.toml"
    monkeypatch.delenv("CARBOND_CONFIG", raising=False)
    for name in list(os.environ):
        if name.startswith("CARBOND_"):
            monkeypatch.delenv(name)

    settings = load_settings(example)

    assert settings.state_dir == Path("/var/lib/carbond")
    text = example.read_text()
    tomllib.loads(text)
    missing = []
    for key in _keys(Settings):
        section, _, leaf = key.rpartition(".")
        if (section and f"[{section}]" not in text) or (
            f"[[{leaf}]]" not in text
            and not re.search(rf"^#?\s*{re.escape(leaf)}\s*=", text, re.MULTILINE)
        ):
            missing.append(key)
    assert not missing, f"keys not shown in {example.name}: {missing}"


def _installed(tmp_path: Path) -> Path:
    """``systemd/install.sh`` staged under ``tmp_path`` with this checkout's venv as prefix."""
    venv = Path(sys.executable).parent.parent
    done = subprocess.run(
        ["sh", str(SYSTEMD / "install.sh"), "--destdir", str(tmp_path), "--prefix", str(venv),
         "--no-python", "--no-activate"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return tmp_path


def test_the_unit_as_installed_verifies_and_its_documentation_is_installed(
    tmp_path: Path,
) -> None:
    root = _installed(tmp_path)
    unit = root / "etc" / "systemd" / "system" / "carbond.service"
    done = _verify(unit)
    assert done.returncode == 0 and done.stderr == "", done.stderr

    directives = _directives(unit.read_text())
    venv = Path(sys.executable).parent.parent
    assert directives["ExecStart"] == [f"{venv}/bin/carbond run --config /etc/carbond/carbond.toml"]
    documents = directives["Documentation"][0].split()
    files = [d.removeprefix("file://") for d in documents if d.startswith("file://")]
    assert files, documents
    for path in files:
        assert (root / path.lstrip("/")).is_file(), f"Documentation={path} is not installed"
    assert (root / "usr/local/bin/carbond").resolve() == (venv / "bin/carbond").resolve()
    for staged in ("etc/sysusers.d/carbond.conf", "etc/tmpfiles.d/carbond.conf",
                   "etc/carbond/carbond.toml"):  # fmt: skip
        assert (root / staged).is_file(), staged


@pytest.mark.parametrize(
    ("argv", "message"),
    [(["--prefix", "venv"], "--prefix must be an absolute path, not venv"),
     (["--prefix"], "--prefix needs a value"), (["--destdir", ""], "--destdir needs a value"),
     (["--bogus"], "unknown option --bogus")],
)  # fmt: skip
def test_the_install_script_refuses_bad_options(
    tmp_path: Path, argv: list[str], message: str
) -> None:
    """A relative --prefix was staged as a relative ExecStart= (a unit that cannot start), and
    --prefix with no value stopped on the shell's own "parameter not set"."""
    done = subprocess.run(
        ["sh", str(SYSTEMD / "install.sh"), "--destdir", str(tmp_path / "root"), "--no-python",
         "--no-activate", *argv],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.startswith(f"install.sh: {message} (see the header of ")
    assert not (tmp_path / "root").exists()  # refused before anything is staged


def test_staging_with_destdir_activates_nothing_on_this_host(tmp_path: Path) -> None:
    """--destdir without --no-activate ran systemd-sysusers and systemd-tmpfiles on this host,
    then this host's "$prefix/bin/carbond" doctor (not the staged one) on this host's
    /etc/carbond/carbond.toml (not the staged one) and systemctl daemon-reload, which does not
    see the staged unit: none of the staged files is on this host, so nothing is activated."""
    calls = tmp_path / "calls"
    fake_bin, venv = tmp_path / "bin", tmp_path / "venv"
    for folder, name in ((fake_bin, "systemd-sysusers"), (fake_bin, "systemd-tmpfiles"),
                         (fake_bin, "systemctl"), (venv / "bin", "carbond")):  # fmt: skip
        folder.mkdir(parents=True, exist_ok=True)
        tool = folder / name
        tool.write_text(f'#!/bin/sh\necho "{name} $*" >> {calls}\n')
        tool.chmod(0o755)
    done = subprocess.run(
        ["sh", str(SYSTEMD / "install.sh"), "--destdir", str(tmp_path / "root"), "--prefix",
         str(venv), "--no-python"],
        capture_output=True, text=True, timeout=60, check=False,
        env={**os.environ, "PATH": f"{fake_bin}:{os.environ['PATH']}"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert not calls.exists(), calls.read_text()
    assert (tmp_path / "root/etc/systemd/system/carbond.service").is_file()
    assert f"staged under {tmp_path / 'root'}; nothing activated on this host" in done.stdout


def test_the_operations_guide_walks_through_the_install_script() -> None:
    guide = (ROOT / "docs" / "operations.md").read_text()
    script = (SYSTEMD / "install.sh").read_text()
    steps = re.findall(r"^# (\d)\. ", script, flags=re.MULTILINE)
    assert steps == [str(n) for n in range(1, len(steps) + 1)]
    for path in (
        "/opt/carbond", "/usr/local/share/doc/carbond", "/etc/systemd/system/carbond.service",
        "/etc/sysusers.d/carbond.conf", "/etc/tmpfiles.d/carbond.conf",
        "/etc/carbond/electricitymaps.token", "systemctl enable --now carbond",
    ):  # fmt: skip
        assert path in script and path in guide, path


def test_the_guide_s_uninstall_removes_everything_the_install_script_puts_down(
    tmp_path: Path,
) -> None:
    """The guide had no uninstall step; the one it gives must name each file and directory
    install.sh creates (a new one added to the script, and not to the guide, fails here)."""
    guide = (ROOT / "docs" / "operations.md").read_text()
    block = re.search(r"^sudo systemctl disable --now carbond\n(.*?)^```", guide, re.M | re.S)
    assert block, "docs/operations.md shows no uninstall block"
    removed = [
        word.rstrip("/")
        for line in re.sub(r"\\\n", " ", block.group(1)).splitlines()
        if line.startswith("sudo rm ")
        for word in line.split()
        if word.startswith("/")
    ]
    root = _installed(tmp_path / "root")
    staged = [p for p in root.rglob("*") if p.is_file() or p.is_symlink()]
    assert staged
    for path in staged:
        where = "/" + str(path.relative_to(root))
        assert any(where == r or where.startswith(r + "/") for r in removed), where
    tmpfiles = (SYSTEMD / "carbond.tmpfiles.conf").read_text()
    for created in re.findall(r"^[dfD]\s+(/\S+)", tmpfiles, re.M):
        assert any(created == r or created.startswith(r + "/") for r in removed), created


def test_the_install_script_refuses_an_interpreter_other_users_cannot_run(
    tmp_path: Path,
) -> None:
    """With root's python3 under /root (pyenv), install.sh made the venv from it and every
    other user's ``carbond submit`` failed with "Permission denied"; it now refuses first."""
    if os.geteuid() != 0 or shutil.which("runuser") is None:
        pytest.skip("needs root and runuser to try the interpreter as another user")
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    python = private / "python3"
    python.write_text(f'#!/bin/sh\nexec {sys.executable} "$@"\n')
    python.chmod(0o755)

    done = subprocess.run(
        ["sh", str(SYSTEMD / "install.sh"), "--destdir", str(tmp_path / "root"), "--no-activate"],
        capture_output=True, text=True, timeout=60, check=False,
        env={**os.environ, "PYTHON": str(python)},
    )  # fmt: skip

    assert done.returncode == 1
    assert done.stderr.startswith(f"install.sh: other users cannot run {python}, "), done.stderr
    assert "PYTHON=/usr/bin/python3" in done.stderr
    assert not (tmp_path / "root").exists()  # refused before any venv is made


def test_no_path_the_unit_opens_to_jobs_is_hidden_by_its_private_tmp() -> None:
    """PrivateTmp= gives the service (and every job) its own /tmp and /var/tmp: the host's
    /var/tmp/carbond-jobs, which tmpfiles created and ReadWritePaths= listed as the jobs'
    scratch dir, was invisible to them. Nothing the unit or tmpfiles offers jobs is there."""
    unit = _directives((SYSTEMD / "carbond.service").read_text())
    assert unit["PrivateTmp"] == ["yes"]
    paths = [p.lstrip("-") for line in unit["ReadWritePaths"] for p in line.split()]
    tmpfiles = (SYSTEMD / "carbond.tmpfiles.conf").read_text()
    paths += re.findall(r"^[dD]\s+(/\S+)", tmpfiles, re.M)
    hidden = [p for p in paths if p in ("/tmp", "/var/tmp") or p.startswith(("/tmp/", "/var/tmp/"))]
    assert not hidden, hidden
    assert re.search(r"^d\s+/var/lib/carbond/scratch\s+1777\b", tmpfiles, re.M)


def test_the_example_configs_commented_lines_show_the_defaults() -> None:
    """The example says a commented line shows the default, so an operator who uncomments one
    changes nothing. Its ``[catalog]`` line read ``act = { fab_intensity_g_per_kwh = 820.0,
    ... }`` while the ACT default is 583 g/kWh: uncommented, every estimated GPU's embodied
    carbon rose. A key whose default is empty or unset (the token, a cache_dir that defaults to
    the state dir's, Slurm's PATH) may show an example; ``act``'s parameters are the defaults."""
    defaults = Settings().model_dump()
    act = {f.name: getattr(ActParameters(), f.name) for f in fields(ActParameters)}
    wrong, section = [], ""
    for number, line in enumerate((SYSTEMD / "carbond.example.toml").read_text().splitlines(), 1):
        if head := re.match(r"^\[+([\w.]+)\]+", line):
            section = head.group(1)
        elif (
            m := re.match(r"^#\s*([a-z][a-z0-9_]*)\s*=\s*([^#]+?)\s*(#.*)?$", line)
        ) and not section.startswith("regions"):
            value = tomllib.loads(f"v = {m.group(2)}")["v"]
            place: Any = defaults
            for part in [*filter(None, section.split(".")), m.group(1)]:
                place = place[part]
            if section == "catalog" and m.group(1) == "act":
                wrong += [f"{number}: act.{k} = {v}, default {act[k]}"
                          for k, v in value.items() if act[k] != v]  # fmt: skip
            elif place not in (None, {}, "") and value != (
                list(place) if isinstance(place, tuple) else place
            ):
                wrong.append(f"{number}: {m.group(1)} = {value!r}, default {place!r}")
    assert not wrong, wrong


def test_the_installed_documentation_has_the_pages_it_links_to(tmp_path: Path) -> None:
    """install.sh copied operations.md and daemon.md alone, but they link to sites.md, gpus.md,
    metrics.md and slurm.md ("[sites.md](sites.md)"): an operator reading the installed copy
    under /usr/local/share/doc/carbond found no such page. Every page a staged page links to
    (within docs/) is staged beside it."""
    docs = _installed(tmp_path) / "usr/local/share/doc/carbond"
    wrong = []
    for page in sorted(docs.glob("*.md")):
        for target in re.findall(r"\]\(([\w.-]+\.md)(?:#[^)\s]*)?\)", page.read_text("utf-8")):
            if not (docs / target).is_file():
                wrong.append(f"{page.name} links to {target}, not installed")
    assert not wrong, wrong


@pytest.mark.parametrize("name", ["carbond.tmpfiles.conf", "carbond.sysusers.conf"])
def test_each_snippet_names_where_the_install_script_installs_it(name: str) -> None:
    """The snippets' first lines said "install as /usr/lib/tmpfiles.d/carbond.conf" (and
    sysusers.d), while install.sh and docs/operations.md put them in /etc/: an operator
    following the comment had two copies, the vendor one shadowed by the other."""
    script = (SYSTEMD / "install.sh").read_text(encoding="utf-8")
    found = re.search(rf'install -m 0644 "\$here/{re.escape(name)}" "\$destdir(/\S+)"', script)
    assert found is not None, f"install.sh no longer installs {name}"
    first = (SYSTEMD / name).read_text(encoding="utf-8").splitlines()[0]
    named = re.findall(r"(/(?:usr|etc)/\S+?\.conf)", first)
    assert named == [found.group(1)], first
    assert found.group(1) in (ROOT / "docs" / "operations.md").read_text(encoding="utf-8")


# Runs getifaddrs(3) with socket(2) of every address family the unit does not list failing
# EAFNOSUPPORT, as systemd's RestrictAddressFamilies= makes it (a seccomp filter, libseccomp).
_UNDER_ADDRESS_FAMILIES = """
import ctypes, errno, socket, sys
allowed = {getattr(socket, name) for name in sys.argv[1:]}
seccomp = ctypes.CDLL("libseccomp.so.2")
seccomp.seccomp_init.restype = ctypes.c_void_p
ctx = ctypes.c_void_p(seccomp.seccomp_init(0x7FFF0000))  # SCMP_ACT_ALLOW
class Cmp(ctypes.Structure):
    _fields_ = [("arg", ctypes.c_uint), ("op", ctypes.c_int),
                ("a", ctypes.c_uint64), ("b", ctypes.c_uint64)]
nr = seccomp.seccomp_syscall_resolve_name(b"socket")
for family in range(46):  # AF_MAX
    if family not in allowed:  # SCMP_ACT_ERRNO(EAFNOSUPPORT) when arg0 == family
        cmp = Cmp(0, 4, family, 0)
        assert seccomp.seccomp_rule_add_exact_array(
            ctx, 0x00050000 | errno.EAFNOSUPPORT, nr, 1, ctypes.byref(cmp)) == 0
if seccomp.seccomp_load(ctx) != 0:
    sys.exit(77)
libc = ctypes.CDLL(None, use_errno=True)
found = ctypes.c_void_p()
if libc.getifaddrs(ctypes.byref(found)) != 0:
    sys.exit("getifaddrs: " + errno.errorcode[ctypes.get_errno()])
"""


def test_jobs_can_list_the_network_interfaces() -> None:
    """Jobs inherit the unit's RestrictAddressFamilies=, which left out AF_NETLINK: getifaddrs
    (3) then fails (EAFNOSUPPORT), and with it what finds the interfaces of a tensor-parallel
    job's processes: NCCL's bootstrap, torch.distributed's, Ray's node address,
    psutil.net_if_addrs. Reading the interfaces needs no capability; changing them needs
    CAP_NET_ADMIN, which the bounding set drops."""
    unit = _directives((SYSTEMD / "carbond.service").read_text())
    [families] = unit["RestrictAddressFamilies"]
    try:
        import ctypes

        ctypes.CDLL("libseccomp.so.2")
    except OSError:
        pytest.skip("libseccomp.so.2 not installed: cannot apply the unit's address families")
    done = subprocess.run(
        [sys.executable, "-c", _UNDER_ADDRESS_FAMILIES, *families.split()],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if done.returncode == 77:
        pytest.skip("seccomp filters cannot be loaded here")
    assert done.returncode == 0, done.stderr
