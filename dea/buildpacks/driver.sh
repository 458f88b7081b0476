#!/bin/sh
# One staging task, run by the stager inside the task's container (or as a plain process
# under --isolation none): detect in order (or take the named or custom buildpack), then
# bin/compile and bin/release, leaving the buildpack's name and release YAML in
# $KILN_BUILD_DIR/.kiln/staging/ for the stager. Its exit status says what failed:
# 0 staged, 64 no buildpack detected, 65 not a buildpack, 66 compile failed, 67 release failed.
# KILN_SKIP_COMPILE=1 (tests) detects and releases without compiling.
set -u
build="$KILN_BUILD_DIR"
cache="$KILN_CACHE_DIR"
envdir="$KILN_ENV_DIR"
builtins="$KILN_BUILDPACKS"
order="node python go static procfile"
result="$build/.kiln/staging"

if [ -n "${KILN_BUILDPACK:-}" ]; then
  case "$KILN_BUILDPACK" in
    /*) bp="$KILN_BUILDPACK" ;;
    *) bp="$builtins/$KILN_BUILDPACK" ;;
  esac
  name="${KILN_BUILDPACK_NAME:-${bp##*/}}"
  if [ ! -x "$bp/bin/compile" ] || [ ! -x "$bp/bin/release" ]; then
    echo "buildpack $name has no executable bin/compile and bin/release" >&2
    exit 65
  fi
  echo "-----> Using buildpack $name"
else
  bp=""
  for n in $order; do
    if out=$("$builtins/$n/bin/detect" "$build" 2>/dev/null); then
      bp="$builtins/$n"
      name=$(printf '%s\n' "$out" | head -n 1)
      [ -n "$name" ] || name="$n"
      break
    fi
  done
  if [ -z "$bp" ]; then
    echo "no buildpack detected this app (tried: $order); name one, or add a Procfile with a web: line" >&2
    exit 64
  fi
  echo "-----> Detected $name"
fi

mkdir -p "$cache" "$result" || exit 66
if [ "${KILN_SKIP_COMPILE:-}" != 1 ]; then
  "$bp/bin/compile" "$build" "$cache" "$envdir"
  status=$?
  if [ "$status" -ne 0 ]; then
    echo "bin/compile of buildpack $name failed with status $status" >&2
    exit 66
  fi
fi
if ! "$bp/bin/release" "$build" >"$result/release.yml"; then
  echo "bin/release of buildpack $name failed" >&2
  exit 67
fi
printf '%s\n' "$name" >"$result/buildpack"
