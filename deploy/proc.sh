# shellcheck shell=bash
# /proc readers for deploy/front.sh and deploy/all-in-one.sh (the image has
# no ps). A field of /proc/PID/stat is read after "(comm) ": a command name
# may hold spaces and parentheses. No subshell in alive: front.sh polls it.

stat_field() {  # stat_field PID N: field N after "(comm) " (0 state, 1 ppid, 2 pgrp, 3 session)
    local stat fields
    read -r stat 2>/dev/null <"/proc/$1/stat" || return 1
    read -ra fields <<<"${stat##*) }"
    echo "${fields[$2]}"
}

alive() {  # alive PID: a process that has not exited (a zombie has)
    local stat
    read -r stat 2>/dev/null <"/proc/$1/stat" || return 1
    stat=${stat##*) }
    [ "${stat%% *}" != Z ]
}

session_pids() {  # session_pids SID: live (not zombie) processes of session SID
    local p stat fields
    for p in /proc/[0-9]*; do
        read -r stat 2>/dev/null <"$p/stat" || continue
        read -ra fields <<<"${stat##*) }"
        if [ "${fields[3]}" = "$1" ] && [ "${fields[0]}" != Z ]; then echo "${p#/proc/}"; fi
    done
}
