"""``carbond doctor``'s ``config`` line fails a config file every user can read that holds the
Electricity Maps token: every user, and every user's job, could read it (a job run as another
user read it with ``cat`` on the dev VM). The token's own file (0600) is where it belongs."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.daemon.doctor.doctor_setup import healthy_setup, run_doctor

SECRET = "tok-3f9c1e77"


def _with_token(config: Path, line: str) -> None:
    config.write_text(config.read_text() + f"\n[electricitymaps]\n{line}\n")


@pytest.mark.parametrize("mode", [0o644, 0o604])
def test_a_token_in_a_config_every_user_reads_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: int
) -> None:
    monkeypatch.delenv("CARBOND_ELECTRICITYMAPS__TOKEN", raising=False)
    _, config = healthy_setup(tmp_path)
    _with_token(config, f'token = "{SECRET}"')
    config.chmod(mode)

    code, checks = run_doctor(config)

    assert code == 1
    assert checks["config"] == (
        f"fail: {config}: electricitymaps.token is set in a file every user can read (mode "
        f"{mode:04o}), and so can every user's job: put the token in "
        "/etc/carbond/electricitymaps.token (0600, the unit's LoadCredential=) and remove it "
        f"here, or `chmod 600 {config}` (docs/operations.md, step 6)"
    )
    assert SECRET not in str(checks)


@pytest.mark.parametrize(
    ("mode", "line"),
    [(0o600, f'token = "{SECRET}"'), (0o640, f'token = "{SECRET}"'), (0o644, 'token = "  "'),
     (0o644, f'# token = "{SECRET}"')],
)  # fmt: skip
def test_a_private_config_or_no_token_passes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: int, line: str
) -> None:
    monkeypatch.delenv("CARBOND_ELECTRICITYMAPS__TOKEN", raising=False)
    _, config = healthy_setup(tmp_path)
    _with_token(config, line)
    config.chmod(mode)

    _, checks = run_doctor(config)

    assert checks["config"].startswith("pass: "), checks["config"]
