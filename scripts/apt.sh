# Sourced by the setup scripts: apt_install PACKAGE... installs the Debian packages that are
# not installed yet (with sudo when not root); returns 1, naming them, where there is no apt-get.
apt_install() {
  local missing=() p sudo=""
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if ! command -v apt-get >/dev/null; then
    echo "please install these system packages: ${missing[*]}" >&2
    return 1
  fi
  [ "$(id -u)" = 0 ] || sudo="sudo"
  printf '\033[1m==> installing system packages: %s\033[0m\n' "${missing[*]}" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
}
