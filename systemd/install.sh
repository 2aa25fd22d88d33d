#!/usr/bin/env bash
# Install s2gestured as a systemd service: a virtual environment at PREFIX (default /opt/s2gesture, the
# path the shipped units start), the units, the commented config and the environment file.
#
#   sudo systemd/install.sh                       # /opt/s2gesture, /etc/s2gesture, /etc/systemd/system
#   sudo systemd/install.sh --enable              # ... and systemctl daemon-reload + enable --now
#   systemd/install.sh --prefix DIR --etc DIR --unit-dir DIR   # elsewhere (units get the paths rewritten)
#
# An existing config or environment file is never overwritten. Re-running upgrades the package in place.
set -euo pipefail

prefix=/opt/s2gesture
etc=/etc/s2gesture
unit_dir=/etc/systemd/system
python=${PYTHON:-python3}
extras=""
enable=0
here="$(cd "$(dirname "$0")" && pwd)"
source_dir="$(dirname "$here")"

usage() {
    sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'
    echo "options: --prefix DIR --etc DIR --unit-dir DIR --python EXE --extras LIST (e.g. spinnaker2) --enable"
}

while [ $# -gt 0 ]; do
    case "$1" in
        --prefix) prefix="$2"; shift 2 ;;
        --etc) etc="$2"; shift 2 ;;
        --unit-dir) unit_dir="$2"; shift 2 ;;
        --python) python="$2"; shift 2 ;;
        --extras) extras="[$2]"; shift 2 ;;
        --enable) enable=1; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "install.sh: unknown option '$1'" >&2; usage >&2; exit 2 ;;
    esac
done

echo "installing s2gestured into $prefix (config $etc, units $unit_dir)"
if [ ! -x "$prefix/bin/python" ]; then
    "$python" -m venv "$prefix"
fi
"$prefix/bin/pip" install -q --upgrade pip
"$prefix/bin/pip" install -q "$source_dir$extras"

install -d "$etc" "$unit_dir"
[ -e "$etc/s2gestured.toml" ] || install -m 0644 "$here/s2gestured.toml" "$etc/s2gestured.toml"
[ -e "$etc/s2gestured.env" ] || install -m 0644 "$here/s2gestured.env" "$etc/s2gestured.env"
for unit in s2gestured.service s2gestured@.service; do
    # the units name /opt/s2gesture and /etc/s2gesture; another prefix or config folder is written in
    sed -e "s#/opt/s2gesture#$prefix#g" -e "s#/etc/s2gesture#$etc#g" "$here/$unit" > "$unit_dir/$unit"
    chmod 0644 "$unit_dir/$unit"
done
"$prefix/bin/s2gestured" check-config --config "$etc/s2gestured.toml"

if [ "$enable" = 1 ]; then
    systemctl daemon-reload
    systemctl enable --now s2gestured.service
    echo "s2gestured enabled; see: systemctl status s2gestured; journalctl -u s2gestured -f"
else
    echo "installed; start it with: systemctl daemon-reload && systemctl enable --now s2gestured"
fi
