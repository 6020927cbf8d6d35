#!/bin/sh
# A chained CNI plugin for tests: appends "<verb> <mount namespace> <cwd>" to the conf's
# `markFile`, sleeps the conf's `sleepAdd` seconds on ADD, and passes prevResult on.
# What it shows: where (in which mount namespace) a runtime or podplex serve ran it.
conf=$(cat)
field() {
  printf '%s' "$conf" | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin).get(sys.argv[1], ""))' "$1"
}
echo "$CNI_COMMAND $(readlink /proc/self/ns/mnt) $(pwd)" >> "$(field markFile)"
if [ "$CNI_COMMAND" = ADD ]; then
  s=$(field sleepAdd)
  [ -n "$s" ] && sleep "$s"
  printf '%s' "$conf" | /usr/bin/python3 -c 'import json,sys; print(json.dumps(json.load(sys.stdin)["prevResult"]))'
fi
exit 0
