#!/usr/bin/env bash
# System packages the test suite drives for real: java (pycocoevalcap's PTB tokenizer / METEOR),
# tmux (the chat test) and Debian's chromium (the web-page test). Installed only when missing and
# only when we may (root with apt); otherwise the tests that need them say what is missing.
set -u
need=()
command -v java >/dev/null 2>&1 || need+=(default-jre-headless)
command -v tmux >/dev/null 2>&1 || need+=(tmux)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing system packages: ${need[*]}"
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}") >/tmp/vlmkit-apt.log 2>&1 \
    || echo "warning: could not install ${need[*]} (see /tmp/vlmkit-apt.log)"
else
  echo "note: missing ${need[*]}; the tests that need them will be skipped"
fi
exit 0
