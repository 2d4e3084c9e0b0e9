#!/usr/bin/env bash
# The system tools the tests need beside the Python environment (`make system-deps`; `make test` and .ci/run run it):
#   promtool  (Debian `prometheus`)  the alert rule checks of the Helm chart (deploy/tests/test_chart.py)
#   prometheus (the same package)    `facemint up --observability` and tests/e2e/test_observability.py
#   chromium  (Debian `chromium`)    the dashboard browser test (services/gateway/tests/test_dashboard_browser.py)
#   node, npm (Debian `nodejs`, `npm`) the same test's Playwright script and its pinned npm packages
#   openssl   (Debian `openssl`)     the throw-away CA of the TLS fetch tests (libs/facemint-core/tests/test_netsafe.py)
# With arguments `TOOL=PACKAGE ...` it checks those instead (a benchmark's tools: `make bench-gateway` needs wrk).
# Installs what is missing with apt-get when run as root on Debian; otherwise prints the exact command and fails.
set -euo pipefail

declare -A PACKAGE=([promtool]=prometheus [prometheus]=prometheus [/usr/bin/chromium]=chromium [node]=nodejs [npm]=npm [openssl]=openssl)
tools=(promtool prometheus /usr/bin/chromium node npm openssl)
if [ $# -gt 0 ]; then
  PACKAGE=() tools=()
  for pair in "$@"; do
    tools+=("${pair%%=*}") PACKAGE[${pair%%=*}]="${pair#*=}"
  done
fi
missing=()
for tool in "${tools[@]}"; do
  command -v "$tool" >/dev/null || missing+=("${PACKAGE[$tool]}")
done
[ ${#missing[@]} -eq 0 ] && exit 0

install=(apt-get install -y -q --no-install-recommends "${missing[@]}")
lock=(-o DPkg::Lock::Timeout=300)  # wait for another apt-get instead of failing
if [ "$EUID" -ne 0 ] || ! command -v apt-get >/dev/null; then
  echo "system-deps: missing Debian packages: ${missing[*]}. Install them with:" >&2
  echo "  sudo apt-get update && sudo ${install[*]}" >&2
  exit 1
fi
echo "system-deps: installing ${missing[*]} (apt-get)" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get "${lock[@]}" update -q >/dev/null
"${install[@]}" "${lock[@]}" >/dev/null
