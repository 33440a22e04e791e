#!/bin/sh
# kubectl jit, as krew installs it: the kubectl-jit wheel shipped beside this script is installed
# once into a private virtualenv (its dependencies from PyPI: kubernetes, pyyaml, google-re2,
# shtab), then every call runs it. Needs python3 >= 3.11. The same script serves as
# kubectl_complete-jit (kubectl's completion hook), told apart by the name it is called by.
set -eu
here=$(cd "$(dirname "$0")" && pwd -P)
wheel=$(ls "$here"/kubectl_jit-*.whl)
version=$(basename "$wheel" | cut -d- -f2)
home="${XDG_CACHE_HOME:-$HOME/.cache}/kubectl-jit/$version"
if [ ! -x "$home/bin/kubectl-jit" ]; then
    python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' || {
        echo "error: kubectl jit needs python3 3.11 or later on PATH" >&2; exit 1; }
    python3 -m venv "$home" >&2
    "$home/bin/pip" install --quiet --disable-pip-version-check "$wheel" >&2
fi
case "$(basename "$0")" in
    kubectl_complete-jit) exec "$home/bin/kubectl_complete-jit" "$@" ;;
    *) exec "$home/bin/kubectl-jit" "$@" ;;
esac
