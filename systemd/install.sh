#!/bin/sh
# Install carbond as a systemd service, step by step (docs/operations.md explains each step).
#
#   sudo systemd/install.sh                      # from this checkout, into a venv in /opt/carbond
#   sudo systemd/install.sh --wheel carbond-*.whl
#   systemd/install.sh --destdir DIR --no-python   # stage the files (packaging, tests)
#
# Options:
#   --prefix DIR     the virtual environment carbond runs from, an absolute path (default
#                    /opt/carbond); the unit's ExecStart= becomes DIR/bin/carbond
#   --wheel FILE     install this wheel instead of the checkout this script is in
#   --destdir DIR    stage every file under DIR (paths inside the files stay the real ones);
#                    implies --no-activate: none of the staged files is on this host
#   --no-python      do not create the venv (it already exists at --prefix)
#   --no-activate    do not run systemd-sysusers/-tmpfiles on the live system, nor enable the unit
#
# The venv is made with $PYTHON (default python3 on PATH), which every user must be able to run:
# `carbond submit`, `jobs` and `status` run on it (an interpreter under /root, as pyenv's, is not).
#
# The Electricity Maps token, if any, is read from $ELECTRICITYMAPS_TOKEN (never from an argument,
# which other users could see in ps).
set -eu

prefix=/opt/carbond
wheel=
destdir=
python=yes
activate=yes
usage() { echo "install.sh: $1 (see the header of $0)" >&2; exit 2; }
while [ $# -gt 0 ]; do
    case $1 in
        --prefix|--wheel|--destdir) [ $# -ge 2 ] && [ -n "$2" ] || usage "$1 needs a value" ;;
    esac
    case $1 in
        --prefix) prefix=$2; shift 2 ;;
        --wheel) wheel=$2; shift 2 ;;
        --destdir) destdir=$2; shift 2 ;;
        --no-python) python=no; shift ;;
        --no-activate) activate=no; shift ;;
        *) usage "unknown option $1" ;;
    esac
done
if [ -n "$destdir" ]; then  # sysusers/tmpfiles, doctor and daemon-reload would act on this
    activate=no             # host's files (its carbond, config and units), not the staged ones
fi
case $prefix in  # the unit's ExecStart= and the /usr/local/bin link must not depend on a cwd
    /*) ;;
    *) usage "--prefix must be an absolute path, not $prefix" ;;
esac
here=$(cd "$(dirname "$0")" && pwd)
source=${wheel:-$(dirname "$here")}
docdir=/usr/local/share/doc/carbond  # as the unit's Documentation= says

# 1. The software: a virtual environment of its own, and `carbond` on every user's PATH.
if [ "$python" = yes ]; then
    py=$(command -v "${PYTHON:-python3}") || usage "no ${PYTHON:-python3} on PATH (set PYTHON)"
    if [ "$(id -u)" = 0 ] && command -v runuser >/dev/null &&
        ! runuser -u nobody -- "$py" -c '' 2>/dev/null; then
        echo "install.sh: other users cannot run $py, so their carbond would fail with" \
            "'Permission denied'; name an interpreter they can run: PYTHON=/usr/bin/python3 $0 ..." >&2
        exit 1
    fi
    "$py" -m venv "$destdir$prefix"
    "$destdir$prefix/bin/pip" install --quiet "$source"
    # pip keeps an installed carbond of the wheel's version ("Requirement already satisfied"):
    # an upgrade to a new wheel of the same version would leave the old code in place.
    if [ -n "$wheel" ]; then
        "$destdir$prefix/bin/pip" install --quiet --force-reinstall --no-deps "$wheel"
    fi
fi
install -d "$destdir/usr/local/bin"
ln -sf "$prefix/bin/carbond" "$destdir/usr/local/bin/carbond"

# 2. The documentation the unit's Documentation= points at, and the pages those link to.
install -d "$destdir$docdir"
for page in operations daemon gpus metrics sites slurm; do
    install -m 0644 "$here/../docs/$page.md" "$destdir$docdir/"
done

# 3. The unit; its ExecStart= is the venv's carbond (step 1), its Documentation= step 2's files.
install -d "$destdir/etc/systemd/system"
sed -e "s|^ExecStart=/opt/carbond/bin/carbond |ExecStart=$prefix/bin/carbond |" \
    "$here/carbond.service" > "$destdir/etc/systemd/system/carbond.service"
chmod 0644 "$destdir/etc/systemd/system/carbond.service"

# 4. The group and the directories: carbond group, /etc/carbond, the token file (0600),
#    /var/lib/carbond with queue.d (1733), logs (0751) and scratch (1777).
install -d "$destdir/etc/sysusers.d" "$destdir/etc/tmpfiles.d"
install -m 0644 "$here/carbond.sysusers.conf" "$destdir/etc/sysusers.d/carbond.conf"
install -m 0644 "$here/carbond.tmpfiles.conf" "$destdir/etc/tmpfiles.d/carbond.conf"
if [ "$activate" = yes ]; then
    systemd-sysusers "$destdir/etc/sysusers.d/carbond.conf"
    systemd-tmpfiles --create "$destdir/etc/tmpfiles.d/carbond.conf"
fi

# 5. The configuration (kept if it exists): edit its [[regions]] before starting.
install -d -m 0755 "$destdir/etc/carbond"
if [ ! -e "$destdir/etc/carbond/carbond.toml" ]; then
    install -m 0644 "$here/carbond.example.toml" "$destdir/etc/carbond/carbond.toml"
fi

# 6. The token as a systemd credential file (root-only; LoadCredential= hands it to the daemon).
if [ -n "${ELECTRICITYMAPS_TOKEN:-}" ]; then
    (umask 077 && printf '%s' "$ELECTRICITYMAPS_TOKEN" > "$destdir/etc/carbond/electricitymaps.token")
fi

# 7. Check, then enable and start.
if [ "$activate" = yes ]; then
    "$prefix/bin/carbond" doctor --config /etc/carbond/carbond.toml || true
    systemctl daemon-reload
    echo "installed; edit /etc/carbond/carbond.toml, then: systemctl enable --now carbond"
elif [ -n "$destdir" ]; then
    echo "staged under $destdir; nothing activated on this host"
fi
