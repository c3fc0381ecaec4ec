#!/bin/sh
# postinstall (.deb postinst, .rpm %post): create the berth user, give it
# the data directory, and tell systemd about the unit, but only when
# systemd runs (not in a container or a CI job, where systemctl would
# fail). The service is not enabled: the operator reads
# /etc/berth/config.yaml first (docs/install.md).
set -e

# deb: "configure" [previously configured version]; rpm: 1 on install,
# 2 or more on upgrade. Anything else (deb abort-*) needs nothing.
case "$1" in
configure) if [ -z "$2" ]; then first=1; else first=0; fi ;;
1) first=1 ;;
[0-9]*) first=0 ;;
*) exit 0 ;;
esac

if ! getent passwd berth >/dev/null 2>&1; then
	if command -v systemd-sysusers >/dev/null 2>&1; then
		systemd-sysusers /usr/lib/sysusers.d/berth.conf
	else
		getent group berth >/dev/null 2>&1 || groupadd --system berth
		useradd --system --gid berth --home-dir /var/lib/berth --no-create-home \
			--shell /usr/sbin/nologin --comment "Berth registry" berth
	fi
fi

# The unit's StateDirectory= would also do this at start; doing it here
# lets `berth gc`/`berth fsck` run as berth before the first start.
chown berth:berth /var/lib/berth
chmod 0750 /var/lib/berth

# The configuration may come to hold secrets: readable by berth only. An
# operator's later choice of owner and mode is kept on upgrade.
if [ "$first" = 1 ] && [ -f /etc/berth/config.yaml ]; then
	chgrp berth /etc/berth/config.yaml
	chmod 0640 /etc/berth/config.yaml
fi

if [ -d /run/systemd/system ]; then
	systemctl daemon-reload || true
	if [ "$first" = 0 ]; then
		# An upgrade restarts a running Berth onto the new binary.
		systemctl try-restart berth.service || true
	fi
fi
exit 0
