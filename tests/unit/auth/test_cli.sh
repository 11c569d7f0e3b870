#!/bin/sh
# The `postern user` and `postern check` commands, end to end.
# usage: test_cli.sh POSTERN
set -u
POSTERN=$1
HERE=$(cd "$(dirname "$0")" && pwd)
T=$(mktemp -d "${TMPDIR:-/tmp}/test_cli.XXXXXX") || exit 1
trap 'rm -rf "$T"' EXIT
DB=$T/users
fails=0
n=0

fail() {
	echo "FAIL: $*"
	fails=$((fails + 1))
}

# expect CODE DESCRIPTION -- runs "$@" after the --, stdin from $IN
expect() {
	want=$1 desc=$2
	shift 3
	n=$((n + 1))
	printf '%s' "$IN" | "$@" >"$T/out" 2>"$T/err"
	got=$?
	[ "$got" -eq "$want" ] || fail "$desc: exit $got, want $want: $(cat "$T/err")"
}

contains() {
	grep -qF -- "$2" "$1" || fail "$1 lacks '$2': $(cat "$1")"
}

IN='s3cret
'
expect 0 "add" -- "$POSTERN" user add --db "$DB" alice
contains "$DB" 'alice:{YESCRYPT}$y$'
[ "$(stat -c %a "$DB")" = 600 ] || fail "new db mode $(stat -c %a "$DB")"
expect 2 "add twice" -- "$POSTERN" user add --db "$DB" alice
contains "$T/err" "postern: user 'alice' already exists in $DB; use 'postern user passwd'"
[ "$(wc -l <"$T/err")" -eq 1 ] || fail "more than one line: $(cat "$T/err")"

IN='tanstaaf
'
expect 0 "add plain" -- "$POSTERN" user add --db "$DB" --scheme plain bob
contains "$T/err" "plaintext-equivalent"
contains "$DB" 'bob:{PLAIN}tanstaaf'
IN='pw
'
expect 0 "options after the name" -- "$POSTERN" user add carol --scheme bcrypt --db "$DB"
contains "$DB" 'carol:{BLF-CRYPT}$2b$'
expect 0 "passwd" -- "$POSTERN" user passwd --db "$DB" --scheme sha512-crypt carol
contains "$DB" 'carol:{SHA512-CRYPT}$6$'
expect 2 "passwd of nobody" -- "$POSTERN" user passwd --db "$DB" nobody
contains "$T/err" "no user 'nobody' in $DB; use 'postern user add'"

# One line only, LF or CRLF stripped.
IN=$(printf 'first\r\nsecond\n')
expect 0 "CRLF" -- "$POSTERN" user add --db "$DB" --scheme plain dave
contains "$DB" 'dave:{PLAIN}first'
grep -q 'second' "$DB" && fail "read past the first line"

IN=''
expect 2 "no password" -- "$POSTERN" user add --db "$DB" erin
IN='
'
expect 2 "empty password" -- "$POSTERN" user add --db "$DB" erin
contains "$T/err" "empty password"
IN='a:b
'
expect 2 "plain with ':'" -- "$POSTERN" user add --db "$DB" --scheme plain erin
IN=$(head -c 1100 /dev/zero | tr '\0' x)
expect 2 "too long" -- "$POSTERN" user add --db "$DB" erin
contains "$T/err" "longer than"
grep -q '^erin:' "$DB" && fail "erin added"

printf 'frank:{PLAIN}f::::::disabled=yes\n' >>"$DB"
IN=''
expect 0 "list" -- "$POSTERN" user list --db "$DB"
printf '%s\n' 'alice crypt,scram-sha-1,scram-sha-256' \
    'bob plain,scram-sha-1,scram-sha-256' \
    'carol crypt,scram-sha-1,scram-sha-256' \
    'dave plain,scram-sha-1,scram-sha-256' 'frank plain disabled' >"$T/want"
cmp -s "$T/out" "$T/want" || fail "list: $(cat "$T/out")"
expect 0 "set" -- "$POSTERN" user set --db "$DB" --expire never --login-delay 60 alice
contains "$DB" 'login_delay=60 expire=never'
expect 1 "set without a change" -- "$POSTERN" user set --db "$DB" alice
expect 2 "set of nobody" -- "$POSTERN" user set --db "$DB" --disable nobody

# The SQLite store.
SQ=$T/users.db
IN='pencil
'
expect 0 "add to sqlite" -- "$POSTERN" user add --db "$SQ" --db-type sqlite --secret zoe
[ "$(stat -c %a "$SQ")" = 600 ] || fail "new sqlite mode $(stat -c %a "$SQ")"
IN=''
expect 0 "set in sqlite" -- "$POSTERN" user set --db "$SQ" --db-type sqlite --disable zoe
expect 0 "list sqlite" -- "$POSTERN" user list --db "$SQ" --db-type sqlite
[ "$(cat "$T/out")" = "zoe crypt,scram-sha-1,scram-sha-256,secret disabled" ] ||
    fail "sqlite list: $(cat "$T/out")"
grep -q pencil "$T/out" && fail "list shows the password"
expect 2 "sqlite as a passwd-file" -- "$POSTERN" user list --db "$SQ"
expect 0 "del from sqlite" -- "$POSTERN" user del --db "$SQ" --db-type sqlite zoe
expect 1 "db-type without db" -- "$POSTERN" user list --db-type sqlite

expect 0 "del" -- "$POSTERN" user del --db "$DB" bob
grep -q '^bob:' "$DB" && fail "bob still there"
expect 2 "del twice" -- "$POSTERN" user del --db "$DB" bob
contains "$T/err" "no user 'bob'"
expect 2 "list of a missing file" -- "$POSTERN" user list --db "$T/none"
printf 'x y:{PLAIN}x\n' >"$T/bad"
expect 2 "bad file" -- "$POSTERN" user add --db "$T/bad" zed
contains "$T/err" "$T/bad:1: invalid user name"

# Usage errors: exit 1, nothing read, nothing written.
cp "$DB" "$T/before"
expect 1 "no action" -- "$POSTERN" user
expect 1 "unknown action" -- "$POSTERN" user frob
expect 1 "no name" -- "$POSTERN" user add --db "$DB"
expect 1 "two names" -- "$POSTERN" user add --db "$DB" a b
expect 1 "bad name" -- "$POSTERN" user add --db "$DB" ../etc
expect 1 "bad scheme" -- "$POSTERN" user add --db "$DB" --scheme md5 x
expect 1 "scheme on del" -- "$POSTERN" user del --db "$DB" --scheme plain alice
expect 1 "unknown option" -- "$POSTERN" user list --db "$DB" --frob
expect 1 "missing value" -- "$POSTERN" user list --db
expect 1 "name on list" -- "$POSTERN" user list --db "$DB" alice
expect 1 "no command" -- "$POSTERN"
expect 1 "unknown command" -- "$POSTERN" frob
cmp -s "$DB" "$T/before" || fail "usage error changed the file"
expect 0 "help" -- "$POSTERN" help
contains "$T/out" "usage: postern"
expect 0 "version" -- "$POSTERN" --version
contains "$T/out" "postern "

# The user file from the configuration.
printf 'mail_root = %s\nuser_db = %s\n' "$T" "$DB" >"$T/p.conf"
expect 0 "check -c" -- "$POSTERN" check -c "$T/p.conf"
[ "$(cat "$T/out")" = "$T/p.conf: ok" ] || fail "check: $(cat "$T/out")"
expect 0 "check from the environment" -- env POSTERN_CONFIG="$T/p.conf" "$POSTERN" check
contains "$T/out" "$T/p.conf: ok"
printf 'mail_root = %s\nno_such_key = 1\n' "$T" >"$T/bad.conf"
expect 1 "check of a bad file" -- "$POSTERN" check -c "$T/bad.conf"
contains "$T/err" "$T/bad.conf:2:"
expect 1 "-c wins over the environment" -- env POSTERN_CONFIG="$T/p.conf" "$POSTERN" check -c "$T/bad.conf"
expect 1 "check of a missing file" -- "$POSTERN" check -c "$T/none.conf"
expect 0 "list from the configuration" -- env POSTERN_CONFIG="$T/p.conf" "$POSTERN" user list
contains "$T/out" "alice"

# The terminal: asked twice, never echoed.
if command -v python3 >/dev/null 2>&1; then
	n=$((n + 1))
	python3 "$HERE/tty_passwd.py" 'tty pass' 'tty pass' -- \
	    "$POSTERN" user add --db "$DB" --scheme plain gina >"$T/tty" 2>&1
	[ "$(head -n 1 "$T/tty")" = 0 ] || fail "tty add: $(cat "$T/tty")"
	contains "$T/tty" "<Password:>"
	contains "$T/tty" "<Retype password:>"
	grep -q 'tty pass' "$T/tty" && fail "password echoed: $(cat "$T/tty")"
	contains "$DB" 'gina:{PLAIN}tty pass'
	n=$((n + 1))
	python3 "$HERE/tty_passwd.py" 'one' 'two' -- \
	    "$POSTERN" user add --db "$DB" hank >"$T/tty" 2>&1
	[ "$(head -n 1 "$T/tty")" = 2 ] || fail "tty mismatch: $(cat "$T/tty")"
	contains "$T/tty" "do not match"
	grep -q '^hank:' "$DB" && fail "hank added"
fi

echo "$n checks, $fails failed"
[ "$fails" -eq 0 ]
