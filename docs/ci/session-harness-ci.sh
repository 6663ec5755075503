#!/bin/sh
# The commands of session-harness's CI templates (docs/ci/*.yml), in one
# place: the templates call this script, and `cargo test`
# (harness/tests/ci_template.rs) runs it as they do.
#
#   docs/ci/session-harness-ci.sh conform   # judge your runner; fails on any FAIL
#     RUNNER_CMD    (required) starts your runner; {config} is the config.toml
#                   the harness writes, e.g. 'gitlab-runner run --config {config}'
#     CONFORM_ARGS  more `conform` options, e.g. '--no-pings --filter unauthorized/*'
#   docs/ci/session-harness-ci.sh fuzz      # one shard of a fuzzing campaign
#     FUZZ_SEED     the campaign's seed (default: CI_PIPELINE_ID, the same for
#                   every shard of the pipeline; else today's date)
#     FUZZ_DURATION how long this shard fuzzes (default 50m)
#     CI_NODE_INDEX/CI_NODE_TOTAL  set by GitLab's `parallel: N`: shard K of N
#                   runs cases K-1, K-1+N, ... of the campaign, so each shard
#                   has its own cases (and case seeds) and none is run twice
#
# Reports go to $REPORTS (default: ./reports): conform-junit.xml and
# conform.json; fuzz.txt, fuzz-junit.xml and fuzz.json (a case per SPEC rule;
# `session-harness report merge` adds up the shards' fuzz.json), and
# regressions/ (shrunk failing lifecycles, as scenario files to replay with
# `session-harness run`).
# SESSION_HARNESS names a built harness; otherwise it is built here (release).
set -eu
# CONFORM_ARGS may hold a glob for --filter: no file name expansion.
set -f

here=$(cd "$(dirname "$0")/../.." && pwd)
mkdir -p "${REPORTS:=reports}"
REPORTS=$(cd "$REPORTS" && pwd)

if [ -z "${SESSION_HARNESS:-}" ]; then
  (cd "$here" && cargo build --release --locked -p session-harness)
  SESSION_HARNESS="${CARGO_TARGET_DIR:-$here/target}/release/session-harness"
fi

case "${1:-}" in
  conform)
    : "${RUNNER_CMD:?set RUNNER_CMD to the command that starts your runner, with {config} for its config.toml}"
    # Exit 1 on any FAIL fails the job; the reports are written either way.
    # shellcheck disable=SC2086 # CONFORM_ARGS is a list of options
    "$SESSION_HARNESS" conform --runner-cmd "$RUNNER_CMD" \
      --junit "$REPORTS/conform-junit.xml" --json "$REPORTS/conform.json" ${CONFORM_ARGS:-}
    ;;
  fuzz)
    seed=${FUZZ_SEED:-${CI_PIPELINE_ID:-$(date -u +%Y%m%d)}}
    status=0
    "$SESSION_HARNESS" fuzz --seed "$seed" --duration "${FUZZ_DURATION:-50m}" \
      --regressions "$REPORTS/regressions" \
      --junit "$REPORTS/fuzz-junit.xml" --json "$REPORTS/fuzz.json" > "$REPORTS/fuzz.txt" || status=$?
    cat "$REPORTS/fuzz.txt"
    exit "$status"
    ;;
  *)
    echo "usage: $0 conform|fuzz (see the comment at its top)" >&2
    exit 2
    ;;
esac
