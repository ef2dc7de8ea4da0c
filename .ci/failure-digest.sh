#!/usr/bin/env bash
# Prints, at the end of a failed `make test`, what each failed test said: its name and the lines
# from its panic on (at most 25 per test, 400 in all), so the cause is in the last screen of a
# long log (CI shows the head and the tail). When no test failed by panicking (a build or link
# error, a test binary killed by a signal or aborted), it prints cargo's error lines and the last
# lines of the log instead, and the machine's free disk and memory (a full disk or an OOM kill
# are the usual causes there). Usage: failure-digest.sh <cargo test output>.
set -uo pipefail
log=${1:?cargo test output}
echo "=================== failure digest ==================="
panics=$(awk '
  /^---- .* stdout ----$/ { name = $2; shown = 0; panic = 0; print ""; print "### " name; next }
  /^failures:$/ || /^test result:/ { name = ""; next }
  name != "" {
    if (!panic && $0 ~ /panicked at/) panic = 1
    if (panic && shown < 25 && total < 400 && $0 !~ /^ +[0-9]+: |^ +at .*:[0-9]+:[0-9]+$/) { print; shown++; total++ }
  }
' "$log")
echo "$panics"
# A property test's shrunk input, which is what reproduces it (the seed is random per run).
awk '/minimal failing input/ { on = 1; n = 0 } on && n < 150 { print; n++ } /^\tsuccesses:/ { on = 0 }' "$log"
echo "--- cargo's errors"
grep -E "^error|process didn't exit successfully|signal: [0-9]+|could not compile|No space left" "$log" | tail -n 40
if [ -z "$panics" ]; then
  echo "--- no test panicked; the log's last lines"
  tail -n 60 "$log"
fi
echo "--- machine"
df -h . /tmp 2>/dev/null | sed 's/^/  /'
free -m 2>/dev/null | sed 's/^/  /'
dmesg 2>/dev/null | grep -iE 'out of memory|killed process' | tail -n 5
