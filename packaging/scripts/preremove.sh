#!/bin/sh
# preremove (.deb prerm, .rpm %preun): stop and disable Berth when the
# package goes away (not on upgrade), and only when systemd runs.
set -e

# deb: "remove" (or "upgrade", "deconfigure", …); rpm: 0 on erase, 1 on
# upgrade.
case "$1" in
remove | 0) ;;
*) exit 0 ;;
esac

if [ -d /run/systemd/system ]; then
	systemctl --no-reload disable --now berth.service berth.socket || true
fi
exit 0
