# shellcheck shell=bash
# Sourced by scripts/test and scripts/build-guest-images: makes sure a Docker
# Engine API is reachable for the container sandbox tier.
#
#   ensure_docker_engine [CONSEQUENCE]
#
# Returns 0 when `docker info` works. Otherwise, when `dockerd` is installed
# and we are root (or may use `sudo -n`), starts it in the background with its
# log in ${TMPDIR:-/tmp}/oxydra-dockerd.log, waits up to 30 s for `docker info`
# and returns 0. Otherwise prints one line "note: <why>; <CONSEQUENCE>" to
# stderr (CONSEQUENCE defaults to "container tests will skip"; an empty one
# prints nothing), keeps <why> for docker_engine_problem and returns 1. It
# never exits the caller, whatever `set -e` says.
#
# DOCKER_HOST is honoured as-is (Podman:
# DOCKER_HOST=unix://$XDG_RUNTIME_DIR/podman/podman.sock); when it names
# another socket than the default one, no dockerd is started.

DOCKER_ENGINE_PROBLEM=""
DOCKER_ENGINE_LOG="${TMPDIR:-/tmp}/oxydra-dockerd.log"

# Why the last ensure_docker_engine call failed (empty after a success).
docker_engine_problem() {
    printf '%s\n' "$DOCKER_ENGINE_PROBLEM"
}

_docker_engine_fail() {
    DOCKER_ENGINE_PROBLEM="$1"
    [ -z "$2" ] || echo "note: $1; $2" >&2
    return 1
}

ensure_docker_engine() {
    local consequence="${1-container tests will skip}"
    DOCKER_ENGINE_PROBLEM=""

    if ! command -v docker >/dev/null 2>&1; then
        _docker_engine_fail "the docker CLI is not installed (Debian: apt-get install docker.io)" "$consequence"
        return 1
    fi
    if docker info >/dev/null 2>&1; then
        return 0
    fi
    if [ -n "${DOCKER_HOST:-}" ] && [ "${DOCKER_HOST}" != "unix:///var/run/docker.sock" ] \
        && [ "${DOCKER_HOST}" != "unix:///run/docker.sock" ]; then
        _docker_engine_fail "no Docker Engine API answers at DOCKER_HOST=${DOCKER_HOST} (start that engine, or unset DOCKER_HOST)" "$consequence"
        return 1
    fi
    if [ -S /var/run/docker.sock ] && [ "$(id -u)" -ne 0 ] && ! [ -w /var/run/docker.sock ]; then
        _docker_engine_fail "permission denied on /var/run/docker.sock (add yourself to the 'docker' group and log in again)" "$consequence"
        return 1
    fi
    if ! command -v dockerd >/dev/null 2>&1 && ! [ -x /usr/sbin/dockerd ]; then
        _docker_engine_fail "the Docker Engine is not running and dockerd is not installed (Debian: apt-get install docker.io)" "$consequence"
        return 1
    fi

    local dockerd_bin
    dockerd_bin="$(command -v dockerd 2>/dev/null || echo /usr/sbin/dockerd)"
    local -a as_root=()
    if [ "$(id -u)" -ne 0 ]; then
        if command -v sudo >/dev/null 2>&1 && sudo -n true >/dev/null 2>&1; then
            as_root=(sudo -n)
        else
            _docker_engine_fail "the Docker Engine is not running and starting dockerd needs root (run: sudo dockerd > ${DOCKER_ENGINE_LOG} 2>&1 &)" "$consequence"
            return 1
        fi
    fi

    echo "starting dockerd in the background (log: ${DOCKER_ENGINE_LOG})" >&2
    # nohup + setsid: the engine outlives this script, as a system service would.
    "${as_root[@]}" setsid nohup "$dockerd_bin" >"$DOCKER_ENGINE_LOG" 2>&1 </dev/null &
    local waited=0
    while [ "$waited" -lt 30 ]; do
        if docker info >/dev/null 2>&1; then
            return 0
        fi
        sleep 1
        waited=$((waited + 1))
    done
    _docker_engine_fail "dockerd did not answer within 30 s (see ${DOCKER_ENGINE_LOG})" "$consequence"
    return 1
}
