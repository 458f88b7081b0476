# The binary's name, shared by compile and release: the last element of the module path.
go_binary_name() {
  name=$(sed -n 's/^module[[:space:]]\{1,\}"\{0,1\}\([^"[:space:]]*\).*/\1/p' "$1/go.mod" | head -n 1)
  name="${name##*/}"
  case "$name" in
    "" | *[!A-Za-z0-9._-]*) name=app ;;
  esac
  printf '%s' "$name"
}
