# Sourced by the setup scripts: apt_install PACKAGE... installs the Debian packages that are
# not installed yet (with sudo when not root); returns 1, naming them, where there is no apt-get.
#
# Another apt-get or dpkg (unattended-upgrades on a machine that just booted, a second setup)
# holds dpkg's and apt's locks for a while: apt-get then waits for them, for ASR_APT_WAIT
# seconds in all (default 600), instead of failing with "Could not get lock".

# apt_get ARGS...: apt-get ARGS, waiting while another process holds the lock it needs
# (apt_gave_up=1 when it stopped waiting).
# DPkg::Lock::Timeout makes apt-get itself wait for dpkg's lock; `apt-get update` takes the
# package lists' lock without waiting, so a lock failure is also retried until the deadline.
apt_get() {
  local wait=${ASR_APT_WAIT:-600} step=${ASR_APT_RETRY_S:-5} start=$SECONDS sudo="" err rc said=0 left
  apt_gave_up=0
  [ "$(id -u)" = 0 ] || sudo="sudo"
  err=$(mktemp)
  while true; do
    left=$((wait - (SECONDS - start)))
    [ "$left" -gt 0 ] || left=1
    rc=0
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout="$left" "$@" 2>"$err" || rc=$?
    if [ "$rc" = 0 ] || ! grep -qE "Could not get lock|Unable to acquire|Unable to lock" "$err"; then
      cat "$err" >&2
      rm -f "$err"
      return "$rc"
    fi
    if [ $((SECONDS - start)) -ge "$wait" ]; then
      echo "apt-get $1: gave up after $wait s waiting for another apt-get or dpkg to release its lock (set ASR_APT_WAIT=SECONDS to wait longer): $(grep -m1 -E 'Could not get lock|Unable' "$err")" >&2
      rm -f "$err"
      apt_gave_up=1
      return "$rc"
    fi
    if [ "$said" = 0 ]; then
      printf '\033[1m==> waiting (up to %s s) for another apt-get or dpkg to finish: %s\033[0m\n' \
        "$wait" "$(grep -m1 -E 'Could not get lock|Unable' "$err" | sed 's/^E: //')" >&2
      said=1
    fi
    sleep "$step"
  done
}

apt_install() {
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if ! command -v apt-get >/dev/null; then
    echo "please install these system packages: ${missing[*]}" >&2
    return 1
  fi
  printf '\033[1m==> installing system packages: %s\033[0m\n' "${missing[*]}" >&2
  # Stale package lists may still do, but not when another apt-get kept its lock all along.
  apt_get update -qq || [ "$apt_gave_up" = 0 ] || return 1
  apt_get install -y -qq "${missing[@]}" >/dev/null
}
