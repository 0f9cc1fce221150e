#!/usr/bin/env bash
# Installs what building and testing rejectwatch needs on a Debian/Ubuntu host,
# skipping whatever is already present: Debian packages, the nightly rust-src
# component, bpf-linker built against LLVM 22 (nightly's LLVM) and cargo-fuzz.
set -euo pipefail

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

# Runtime + test tools: iproute2 for netns/veth, nginx as the real server in
# end-to-end tests, tcpdump/tcpreplay for captures and replays, wrk for the
# bench, openssl for the TLS test certificate, curl as a client; nftables and
# ipset load the generated blocklists in tests; prometheus (with promtool)
# checks the shipped rules and scrapes a live daemon in a test;
# crowdsec-firewall-bouncer enforces the CrowdSec-compatible decisions API
# in a test; python3-pip installs the STIX libraries that check the export;
# chromium loads the HTML report headless in a test; python3 writes the fuzz
# corpora's structured seeds (fuzz/seed.sh).
APT_PKGS=(build-essential pkg-config iproute2 nginx tcpdump tcpreplay wrk openssl curl
          llvm-22-dev libpolly-22-dev libzstd-dev zlib1g-dev ethtool bpftool
          nftables ipset prometheus crowdsec-firewall-bouncer python3 python3-pip chromium)

# Debian's crowdsec-firewall-bouncer depends on crowdsec, whose setup
# registers with CrowdSec's online API unless these credentials exist
# already; without internet that fails and leaves the package half
# configured. A comment is enough for it to skip the registration.
if [ ! -e /etc/crowdsec/online_api_credentials.yaml ]; then
  $SUDO mkdir -p /etc/crowdsec
  echo "# left empty on purpose: no online API (rejectwatch test host)" \
    | $SUDO tee /etc/crowdsec/online_api_credentials.yaml >/dev/null
fi

missing=()
for p in "${APT_PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "deps: installing Debian packages: ${missing[*]}"
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
  # The Debian nginx package starts a system-wide instance on :80; tests run
  # their own instances in namespaces, so the default one is not wanted.
  # Likewise the Debian prometheus package enables a server on :9090, and
  # crowdsec a local API on :8080 with a bouncer that would load firewall
  # rules into the host: tests run their own bouncer in a namespace.
  if command -v systemctl >/dev/null 2>&1; then
    $SUDO systemctl disable --now nginx prometheus crowdsec crowdsec-firewall-bouncer >/dev/null 2>&1 || true
  fi
  for p in nginx prometheus crowdsec crowdsec-firewall-bouncer; do
    $SUDO pkill -x "$p" >/dev/null 2>&1 || true
  done
fi

# The STIX export is checked by the reference libraries: stix2 parses the
# bundle, stix2-validator checks it against the specification. Debian 12's
# python is "externally managed", hence --break-system-packages (it only
# adds these two and their dependencies).
PY=python3
if [ -x /usr/bin/python3 ]; then PY=/usr/bin/python3; fi
if ! $PY -c 'import stix2, stix2validator' >/dev/null 2>&1; then
  echo "deps: installing the stix2 and stix2-validator Python packages"
  $SUDO $PY -m pip install -q --break-system-packages stix2 stix2-validator \
    || $SUDO $PY -m pip install -q stix2 stix2-validator
fi

if ! command -v cargo >/dev/null 2>&1; then
  if [ -x "$HOME/.cargo/bin/cargo" ]; then
    export PATH="$HOME/.cargo/bin:$PATH"
  else
    echo "deps: installing rustup (stable + nightly)"
    curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal
    export PATH="$HOME/.cargo/bin:$PATH"
  fi
fi

rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
rustup component list --toolchain nightly --installed | grep -q '^rust-src' \
  || rustup component add rust-src --toolchain nightly
# llvm-profdata, for the profile-guided build (cargo xtask pgo).
rustup component list --installed | grep -q '^llvm-tools' || rustup component add llvm-tools

# bpf-linker must use the same LLVM major as nightly's rustc, or it cannot
# read the bitcode rustc emits.
if ! command -v bpf-linker >/dev/null 2>&1; then
  echo "deps: building bpf-linker against LLVM 22 (a few minutes, once)"
  PATH="/usr/lib/llvm-22/bin:$PATH" cargo install bpf-linker --locked \
    --no-default-features --features llvm-22
fi
# cargo-fuzz, for the fuzz targets scripts/test.sh runs briefly.
if ! command -v cargo-fuzz >/dev/null 2>&1; then
  echo "deps: installing cargo-fuzz"
  cargo install cargo-fuzz --locked
fi
echo "deps: ok"
