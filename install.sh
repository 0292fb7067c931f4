#!/bin/sh
# Install FreeRide for this user, with no network and nothing but Python 3.10 or newer.
#
#   sh install.sh               install, or update what an earlier run installed
#   sh install.sh --uninstall   remove what it installed, and nothing else
#
# It builds freeride.pyz (freeride.py, providers/ and the status page's dashboard/) from the
# checkout this script sits in (or takes the freeride.pyz beside it), puts it in
# $PREFIX/lib/freeride/ and two small launchers, freeride and freeride-watcher, in
# $PREFIX/bin. PREFIX defaults to ~/.local; PYTHON (default python3) names the interpreter
# the launchers run. It never asks for sudo: for a prefix only root can write, run it as root
# yourself (sudo PREFIX=/usr/local sh install.sh).
set -eu

prefix=${PREFIX:-$HOME/.local}
python=${PYTHON:-python3}
bin=$prefix/bin
lib=$prefix/lib/freeride
here=$(CDPATH= cd -- "$(dirname -- "$0")" && pwd)
pyz=$lib/freeride.pyz
record=$lib/freeride.pyz.record
marker="# Installed by FreeRide's install.sh; remove with: sh install.sh --uninstall"
staged=""
staged_record=""

say() { printf '%s\n' "$*"; }
die() { printf 'install.sh: %s\n' "$*" >&2; exit 1; }

# A launcher is ours when it carries the marker; anything else at that path is left alone.
ours() { [ -f "$1" ] && grep -qxF "$marker" "$1"; }

# The pyz cannot carry the marker, so a record beside it does: the marker, then the pyz's
# cksum. Uninstall removes the pyz only when the record is ours and the sum still matches.
pyz_ours() {
    ours "$record" && [ -f "$pyz" ] && [ "$(sed -n 2p "$record")" = "$(cksum < "$pyz")" ]
}

# $1 as one single-quoted shell word, whatever it holds.
quote() { printf "'%s'" "$(printf '%s' "$1" | sed "s/'/'\\\\''/g")"; }

cleanup() {
    [ -z "$staged" ] || rm -f "$staged"
    [ -z "$staged_record" ] || rm -f "$staged_record"
}
trap cleanup EXIT
trap 'exit 1' HUP INT TERM

uninstall() {
    removed=0
    for launcher in "$bin/freeride" "$bin/freeride-watcher"; do
        if ours "$launcher"; then
            rm -f "$launcher"
            say "removed $launcher"
            removed=1
        elif [ -e "$launcher" ]; then
            say "left $launcher: install.sh did not install it"
        fi
    done
    skill=$HOME/.claude/skills/freeride/SKILL.md
    if [ -f "$skill" ] && cmp -s "$here/skills/freeride/SKILL.md" "$skill"; then
        rm -f "$skill" && rmdir "${skill%/*}" 2>/dev/null || true
        say "removed $skill"
    fi
    if pyz_ours; then
        rm -f "$pyz"
        say "removed $pyz"
        removed=1
    elif [ -e "$pyz" ] && ours "$record"; then
        say "left $pyz: it changed after install.sh installed it"
    elif [ -e "$pyz" ]; then
        say "left $pyz: install.sh did not install it"
    fi
    if ours "$record"; then rm -f "$record"; fi
    rmdir "$lib" 2>/dev/null || true
    [ "$removed" = 1 ] || say "nothing to remove under $prefix"
}

check_python() {
    command -v "$python" >/dev/null 2>&1 ||
        die "$python not found: FreeRide needs Python 3.10 or newer (set PYTHON=/path/to/python3)"
    "$python" -c 'import sys; sys.exit(sys.version_info < (3, 10))' 2>/dev/null ||
        die "FreeRide needs Python 3.10 or newer, but $python is $("$python" -V 2>&1 || echo 'unknown');
set PYTHON=/path/to/python3.10 (or newer) and run this again"
}

# "freeride" runs the pyz like python3 freeride.pyz; "freeride-watcher" calls the same
# function as the pip-installed command of that name.
write_launcher() {
    name=$1
    if [ "$name" = freeride ]; then
        run="exec $(quote "$python") $(quote "$pyz") \"\$@\""
    else
        code='import sys; sys.path.insert(0, sys.argv[1]); sys.argv[0:2] = ["freeride-watcher"]; import freeride; sys.exit(freeride.watcher_main())'
        run="exec $(quote "$python") -c $(quote "$code") $(quote "$pyz") \"\$@\""
    fi
    staged="$bin/.$name.$$"
    printf '#!/bin/sh\n%s\n%s\n' "$marker" "$run" > "$staged"
    chmod 755 "$staged"
    mv -f "$staged" "$bin/$name"
    staged=""
}

install() {
    check_python
    for launcher in "$bin/freeride" "$bin/freeride-watcher"; do
        if [ -e "$launcher" ] && ! ours "$launcher"; then
            die "$launcher exists and install.sh did not install it (pip or pipx?); remove it
or choose another PREFIX"
        fi
    done
    if [ -e "$pyz" ] && ! ours "$record"; then
        die "$pyz exists and install.sh did not install it; remove it or choose another PREFIX"
    fi
    mkdir -p "$bin" "$lib" 2>/dev/null && [ -w "$bin" ] && [ -w "$lib" ] ||
        die "cannot write to $prefix: choose another PREFIX, or run this as a user who can
write there (for example: sudo PREFIX=$prefix sh install.sh)"

    staged="$lib/.freeride.pyz.$$"
    if [ -f "$here/freeride.py" ] && [ -f "$here/providers/__init__.py" ] &&
            [ -f "$here/agents/__init__.py" ]; then
        "$python" -B "$here/freeride.py" pack -o "$staged" >/dev/null ||
            die "could not build freeride.pyz from $here"
    elif [ -f "$here/freeride.pyz" ]; then
        cp "$here/freeride.pyz" "$staged"
    else
        die "found neither a FreeRide checkout nor a freeride.pyz in $here"
    fi
    chmod 755 "$staged"
    # The record goes first: interrupted in between, the next run still knows the pyz is its own.
    staged_record="$lib/.freeride.pyz.record.$$"
    printf '%s\n%s\n' "$marker" "$(cksum < "$staged")" > "$staged_record"
    mv -f "$staged_record" "$record"
    staged_record=""
    mv -f "$staged" "$pyz"
    staged=""
    write_launcher freeride
    write_launcher freeride-watcher

    version=$("$bin/freeride" --version) || die "the installed $bin/freeride does not run"
    say "installed $version: $bin/freeride, $bin/freeride-watcher ($pyz)"
    case ":$PATH:" in
        *":$bin:"*) ;;
        *) say "$bin is not on your PATH; add it, for example in ~/.profile:"
           say "  export PATH=\"$bin:\$PATH\"" ;;
    esac
    offer_skill
}

# Claude Code's skill (skills/README.md): offered when ~/.claude exists, never overwriting a
# SKILL.md that is not this one. FREERIDE_SKILL=1 answers yes, =0 no, without asking.
offer_skill() {
    src=$here/skills/freeride/SKILL.md dest=$HOME/.claude/skills/freeride/SKILL.md
    [ -d "$HOME/.claude" ] && [ -f "$src" ] || return 0
    if [ -f "$dest" ]; then
        cmp -s "$src" "$dest" || say "left $dest: it is not this FreeRide's skill"
        return 0
    fi
    answer=${FREERIDE_SKILL-}
    if [ -z "$answer" ] && [ -t 0 ]; then
        printf 'Install the FreeRide skill for Claude Code in %s? [y/N] ' "${dest%/*}"
        read -r answer || answer=""
    fi
    case "$answer" in
        1|y|Y|yes) mkdir -p "${dest%/*}" && cp "$src" "$dest" && say "installed the skill: $dest" ;;
        *) say "Claude Code found: FREERIDE_SKILL=1 sh install.sh installs the FreeRide skill" ;;
    esac
}

case "${1-}" in
    "") install ;;
    --uninstall) uninstall ;;
    -h|--help) sed -n '2,11s/^# \{0,1\}//p' "$0" ;;
    *) printf 'usage: sh install.sh [--uninstall]\n' >&2; exit 2 ;;
esac
