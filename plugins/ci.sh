#!/usr/bin/env bash
# CI for the example plugins: install them for real, run their tests, run the conformance kit
# on them, check the plugin environment variables against the installed packages, then train
# with them. Run from the repository root in an environment where dstbench is installed.
set -euo pipefail

python -m pip install ./plugins/dstbench-criteria-extra ./plugins/dstbench-csv-logger
python -m pytest -n auto plugins
python -m dstbench check-plugin criteria-extra csv-logger

status() {  # status <plugin>: its status in `dstbench plugins --json` under the current env
    python -m dstbench plugins --json | python -c "import json,sys; print({p['name']: p['status'] for p in json.load(sys.stdin)['plugins']}['$1'])"
}
test "$(status criteria-extra)" = loaded
test "$(DSTBENCH_LOAD_PLUGINS=csv-logger status criteria-extra)" = skipped
test "$(DSTBENCH_DISABLE_PLUGINS=criteria-extra status criteria-extra)" = blocked

out=$(mktemp -d)
# A suite that uses the plugins: their criteria must train and reach the leaderboard, whose
# header must name the plugin distribution behind them.
DSTBENCH_CSV_DIR="$out/csv" python -m dstbench suite plugins/suite.toml --output "$out/results"
test -s "$out/csv/runs.csv"
grep -q "set_paper" "$out/results/leaderboard.md"
grep -q "dstbench-criteria-extra" "$out/results/leaderboard.md"
echo "plugins CI ok"
