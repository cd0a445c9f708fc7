#!/usr/bin/env bash
# Installs the system packages that building and testing streamer need and
# that are missing, on a Debian machine; none is left running as a service.
# Run as root; idempotent, and quick (no apt call at all) when nothing is
# missing. As another user it only says
# what to install and exits 1.
#
# Each need_* function checks one thing and appends the Debian packages it
# lacks to `missing`; before_install runs between `apt-get update` and the
# install, for packages that want a setting first.
set -euo pipefail

missing=()

# GNU make, for the Makefile.
need_make() {
	command -v make >/dev/null 2>&1 || missing+=(make)
}

# PostgreSQL server binaries: internal/pgtest starts a throwaway cluster with
# them, and scripts/devdb.sh the dev database. The package brings psql and the
# postgres OS user that the server runs as when we are root.
need_postgres() {
	if ! compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null; then
		missing+=(postgresql)
	elif ! command -v psql >/dev/null 2>&1; then
		missing+=(postgresql-client)
	fi
}

# Chromium, for the browser tests in internal/e2e (chromedp drives Debian's
# package at /usr/bin/chromium; it needs no download of its own).
need_chromium() {
	[[ -x /usr/bin/chromium ]] || missing+=(chromium)
}

# nginx, for the reverse-proxy tests, which start their own with a generated
# configuration. The package's system service is never wanted: see
# before_install and after_install.
need_nginx() {
	[[ -x /usr/sbin/nginx ]] || command -v nginx >/dev/null 2>&1 || missing+=(nginx)
}

# Prometheus, for the test that runs docs/grafana-dashboard.json's queries
# on a real scrape (internal/e2e). Like nginx, its service is never wanted.
need_prometheus() {
	[[ -x /usr/bin/prometheus ]] || command -v prometheus >/dev/null 2>&1 || missing+=(prometheus)
}

# ss (iproute2): the churn soak and the load tool's slow scenarios measure
# the server's sockets and their kernel memory with ss -m.
need_ss() {
	command -v ss >/dev/null 2>&1 || missing+=(iproute2)
}

need_make
need_ss
need_postgres
need_chromium
need_nginx
need_prometheus

if ((${#missing[@]} == 0)); then
	exit 0
fi

if ((EUID != 0)); then
	echo "ensure-deps: missing Debian packages: ${missing[*]}" >&2
	echo "ensure-deps: install them as root with:" >&2
	echo "  apt-get update && apt-get install -y --no-install-recommends ${missing[*]}" >&2
	exit 1
fi

before_install() {
	# Debian's postgresql package creates and starts a "main" cluster on port
	# 5432 unless told not to. Nothing here uses it, so ask for none.
	if [[ " ${missing[*]} " == *" postgresql "* ]]; then
		apt-get install -y --no-install-recommends postgresql-common
		sed -i 's/^#\{0,1\}[[:space:]]*create_main_cluster[[:space:]]*=.*/create_main_cluster = false/' \
			/etc/postgresql-common/createcluster.conf
	fi
	# Debian's nginx and prometheus packages start a system service when
	# installed (nginx on port 80, prometheus on 9090), through invoke-rc.d
	# or deb-systemd-invoke, which both ask policy-rc.d first. Answer "no
	# service may start" (101) for the install, unless the machine already
	# has a policy of its own.
	if [[ ( " ${missing[*]} " == *" nginx "* || " ${missing[*]} " == *" prometheus "* ) && ! -e /usr/sbin/policy-rc.d ]]; then
		printf '#!/bin/sh\n# ensure-deps.sh: no service starts during the install\nexit 101\n' >/usr/sbin/policy-rc.d
		chmod 755 /usr/sbin/policy-rc.d
		trap 'rm -f /usr/sbin/policy-rc.d' EXIT
	fi
}

after_install() {
	# And keep them from starting at the next boot; stop them should a
	# policy of the machine's own have let them start.
	local svc
	for svc in nginx prometheus; do
		[[ " ${missing[*]} " == *" $svc "* ]] || continue
		if [[ -d /run/systemd/system ]] && command -v systemctl >/dev/null 2>&1; then
			systemctl disable --now "$svc.service" >/dev/null 2>&1 || true
		else
			if command -v update-rc.d >/dev/null 2>&1; then
				update-rc.d "$svc" disable >/dev/null 2>&1 || true
			fi
			if [[ -x "/etc/init.d/$svc" ]]; then
				"/etc/init.d/$svc" stop >/dev/null 2>&1 || true
			fi
		fi
	done
}

echo "ensure-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update
before_install
apt-get install -y --no-install-recommends "${missing[@]}"
after_install
