#!/usr/bin/env bash
# The environment of a plain JupyterHub on one Linux host, as tests/test_multiuser.py
# runs it: a venv with requirements-hub.txt (the learner's pins plus JupyterHub)
# and configurable-http-proxy from npm beside it. `make hub-deps` runs this.
#
#   deploy/local/build-hub-env.sh [VENV] [PYTHON]
#
# Why /opt and Debian's /usr/bin/python3: every learner is a system user who must
# be able to execute the single-user server's Python; a venv made from a Python
# under /root (mode 700, pyenv) fails to spawn with PermissionError.
# Idempotent and cached: a stamp holds a hash of the inputs, so a second run
# returns at once; a changed pin rebuilds from scratch (no stale packages).
# A lock file makes two runs at once (two worktrees, two CI jobs) take turns.
set -euo pipefail
cd "$(dirname "$0")/../.."

venv=${1:-/opt/labsmtp-hub-venv}
python=${2:-/usr/bin/python3}
# 4.6.3 runs on Debian 12's Node.js 18 as well as on 20+ (5.x needs Node 20).
chp_version=4.6.3
umask 022 # world-readable: the learners' users run these files

# The pins, not their comments: a reworded comment must not cost a rebuild.
want="$( (grep -hv '^[[:space:]]*\(#\|$\)' requirements.txt requirements-hub.txt; cat "$0"
  echo "$python $chp_version") | sha256sum | cut -c1-16)"
stamp="$venv/.stamp-hub"
chp="$venv/chp/node_modules/.bin/configurable-http-proxy"

exec 9>"$venv.lock"
flock 9
if [ "$(cat "$stamp" 2>/dev/null)" = "$want" ] && [ -x "$chp" ]; then
  echo "$venv is up to date"
  exit 0
fi

command -v npm >/dev/null || {
  echo "build-hub-env: npm is missing: apt-get install nodejs npm (.ci/run does)" >&2
  exit 1
}
"$python" -c 'import ensurepip' 2>/dev/null || {
  echo "build-hub-env: $python cannot make a venv: apt-get install python3-venv" >&2
  exit 1
}

echo "Building $venv from $python (a minute or two the first time)"
rm -rf "$venv"
"$python" -m venv "$venv"
"$venv/bin/python" -m pip --no-input --quiet install -r requirements-hub.txt
"$venv/bin/python" -m pip --no-input --quiet check
npm install --prefix "$venv/chp" --no-fund --no-audit --loglevel=error \
  "configurable-http-proxy@$chp_version"
"$chp" --version >/dev/null
chmod -R a+rX "$venv"
echo "$want" >"$stamp"
echo "$venv: $("$venv/bin/jupyterhub" --version) with configurable-http-proxy $("$chp" --version)"
