# shellcheck shell=bash
# admin_tmux.sh — keyforge-admin in a detached pane of a private tmux
# server, for tests/tui/test_admin.sh and scripts/chaos (sourced).
#
# The caller sets ADMIN (the program), ADIR (a folder of its own: the tmux
# configuration, the pane's script, and the admin's pid, stderr and exit
# status go there), TSOCK (the server's socket name) and SESSION.

# tmux on the private server: no user configuration, no status line (the
# pane is the whole window), no history.
tm() { tmux -L "$TSOCK" -f "$ADIR/tmux.conf" "$@"; }

# admin_tmux_setup: the server's configuration, and ADIR/run-admin.sh, which
# the pane runs: the hive's addresses (KEYFORGE_RPC, KEYFORGE_EVENTS,
# KEYFORGE_TOKEN_FILE as they are now), a terminal type that tmux emulates,
# the admin (its pid kept for admin_tmux_stop: the inner sh execs it, with
# any flags a caller adds after the program's path in that line), then its
# exit status into ADIR/admin.exit ("exit=N").
admin_tmux_setup() {
	unset TMUX TMUX_PANE # run from inside a tmux: ours is a server of its own all the same
	printf '%s\n' 'set -g status off' 'set -g default-terminal screen-256color' \
		'set -g history-limit 0' >"$ADIR/tmux.conf"
	{
		printf 'export %s=%q\n' KEYFORGE_RPC "$KEYFORGE_RPC" KEYFORGE_EVENTS "$KEYFORGE_EVENTS" \
			KEYFORGE_TOKEN_FILE "$KEYFORGE_TOKEN_FILE" TERM screen-256color LC_ALL C.UTF-8
		# shellcheck disable=SC2016 # expanded by the inner sh
		printf 'sh -c %q sh %q %q 2>%q\n' 'echo $$ >"$1"; shift; exec "$@"' \
			"$ADIR/admin.pid" "$ADMIN" "$ADIR/admin.err"
		# shellcheck disable=SC2016 # $? is the pane shell's
		printf 'echo "exit=$?" >%q\n' "$ADIR/admin.exit"
	} >"$ADIR/run-admin.sh"
}

admin_running() { [ ! -e "$ADIR/admin.exit" ] && tm has-session -t "$SESSION" 2>/dev/null; }

# admin_tmux_stop: the server, the socket file it leaves, and the admin
# should it outlive its terminal (it got SIGHUP from tmux).
admin_tmux_stop() {
	local pid
	tm kill-server >/dev/null 2>&1
	rm -f "${TMUX_TMPDIR:-/tmp}/tmux-$(id -u)/$TSOCK"
	pid="$(cat "$ADIR/admin.pid" 2>/dev/null)" || return 0
	case "$(readlink "/proc/$pid/exe" 2>/dev/null)" in
	*/keyforge-admin*) kill -KILL "$pid" 2>/dev/null ;;
	esac
}
