#!/usr/bin/env bash
# Installs what is missing (scripts/deps.sh), builds rejectwatch in release
# mode and runs it live; with no arguments it watches the interface of the
# default route on ports 80, 8080, 8000 and 3000 and serves metrics on
# 127.0.0.1:9617. Arguments are passed to `rejectwatch run`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
export PATH="$HOME/.cargo/bin:$PATH"
cargo build --locked --release -p rejectwatch
exec ./target/release/rejectwatch run "$@"
