#!/usr/bin/env bash
# Prints, at the end of a failed `make test`, what each failed test said: its name and the lines
# from its panic on (at most 25 per test, 400 in all), so the cause is in the last screen of a
# long log (CI shows the head and the tail). Usage: failure-digest.sh <cargo test output>.
set -euo pipefail
log=${1:?cargo test output}
echo "=================== failure digest ==================="
awk '
  /^---- .* stdout ----$/ { name = $2; shown = 0; panic = 0; printed++; print ""; print "### " name; next }
  /^failures:$/ || /^test result:/ { name = ""; next }
  name != "" {
    if (!panic && $0 ~ /panicked at/) panic = 1
    if (panic && shown < 25 && total < 400 && $0 !~ /^ +[0-9]+: |^ +at .*:[0-9]+:[0-9]+$/) { print; shown++; total++ }
  }
' "$log"
grep -E '^error: [0-9]+ targets? failed|^    `-p ' "$log" || true
