#!/bin/sh
# postremove (.deb postrm, .rpm %postun): forget the unit when systemd
# runs. The data in /var/lib/berth and the berth user stay, even on purge:
# a registry's content is not the package's to delete (docs/install.md
# says how to remove them by hand). An empty data directory goes.
set -e

# deb: "remove", "purge" (or "upgrade", …); rpm: 0 on erase, 1 on upgrade.
case "$1" in
remove | purge | 0) ;;
*) exit 0 ;;
esac

if [ "$1" = purge ] || [ "$1" = 0 ]; then
	rmdir /var/lib/berth 2>/dev/null || true
	rmdir /etc/berth 2>/dev/null || true
fi
if [ -d /run/systemd/system ]; then
	systemctl daemon-reload || true
fi
exit 0
