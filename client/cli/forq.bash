# bash completion for forq(1): commands, their options, dict ops, the verbs of queue, lock and
# event, and the task names forqd
# offers (asked with `forq tasks`, at the endpoint given on the command line if any).
# Installed as share/bash-completion/completions/forq; needs nothing from bash-completion.

_forq_tasks()
{
    # a short timeout: a forqd that does not answer must not hang the shell
    "$1" "${@:2}" --connect-timeout 1 tasks 2>/dev/null | cut -d ' ' -f 1
}

_forq()
{
    local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]}
    local forq=${COMP_WORDS[0]} cmd= cmd_at=0 i w
    local -a global=()
    local commands="submit map wait cancel status tasks jobs purge dict queue lock event ping keygen help"

    # the global options before the command, kept to ask the same forqd for its tasks
    for ((i = 1; i < COMP_CWORD; i++)); do
        w=${COMP_WORDS[i]}
        case $w in
        -e | --endpoint | --connect-timeout | --lost-after | --key | --server-key)
            global+=("$w" "${COMP_WORDS[i+1]}")
            ((i++))
            ;;
        --endpoint=* | --connect-timeout=* | --lost-after=* | --key=* | --server-key=*) global+=("$w") ;;
        -*) ;;
        *)
            cmd=$w
            cmd_at=$i
            break
            ;;
        esac
    done

    if [[ -z $cmd ]]; then
        case $prev in
        -e | --endpoint | --connect-timeout | --lost-after) return ;;
        --key | --server-key) COMPREPLY=($(compgen -f -- "$cur")) && return ;;
        esac
        if [[ $cur == -* ]]; then
            COMPREPLY=($(compgen -W "--endpoint --connect-timeout --lost-after --key --server-key --help --version" -- "$cur"))
        else
            COMPREPLY=($(compgen -W "$commands" -- "$cur"))
        fi
        return
    fi

    local opts= valued=
    case $cmd in
    submit)
        opts="--timeout --deadline --priority --retries --id --store --no-wait --wait-timeout --detach-on-interrupt"
        valued="--timeout --deadline --priority --retries --id --store --wait-timeout"
        ;;
    map)
        opts="--input --skip-blank --chunksize --window --unordered --timeout --priority --retries"
        valued="--input --chunksize --window --timeout --priority --retries"
        ;;
    wait) opts="--timeout" valued="--timeout" ;;
    status | tasks) opts="--json" ;;
    jobs)
        opts="--state --task --limit --json"
        valued="--state --task --limit"
        ;;
    purge) opts="--task" valued="--task" ;;
    keygen) opts="--out --force" valued="--out" ;;
    dict)
        opts="--with-version --version --timeout"
        valued="--version --timeout"
        ;;
    queue)
        opts="--front --maxsize --timeout --nowait --start --limit"
        valued="--maxsize --timeout --start --limit"
        ;;
    lock)
        opts="--lease --timeout --nowait --permits"
        valued="--lease --timeout --permits"
        ;;
    event) opts="--timeout --nowait" valued="--timeout" ;;
    esac

    if [[ " $valued " == *" $prev "* ]]; then
        [[ $prev == --input ]] && COMPREPLY=($(compgen -f -- "$cur"))
        return
    fi
    if [[ $cur == -* && $cur != -[0-9]* ]]; then
        COMPREPLY=($(compgen -W "$opts --help" -- "$cur"))
        return
    fi

    # which operand is being written: the words after the command that are not options
    local n=0
    for ((i = cmd_at + 1; i < COMP_CWORD; i++)); do
        w=${COMP_WORDS[i]}
        if [[ " $valued " == *" $w "* ]]; then
            ((i++))
        elif [[ $w != -* || $w == - || $w == -[0-9]* ]]; then
            ((n++))
        fi
    done

    case $cmd:$n in
    submit:0 | map:0)
        COMPREPLY=($(compgen -W "$(_forq_tasks "$forq" "${global[@]}")" -- "$cur"))
        ;;
    submit:1)
        # ARGS_JSON from a file: @FILE
        if [[ $cur == @* ]]; then
            COMPREPLY=($(compgen -f -- "${cur#@}"))
            COMPREPLY=("${COMPREPLY[@]/#/@}")
        fi
        ;;
    dict:0)
        COMPREPLY=($(compgen -W "get set del has pop setdefault incr cas wait len clear update keys items dump list" -- "$cur"))
        ;;
    queue:0) COMPREPLY=($(compgen -W "put get len range clear" -- "$cur")) ;;
    lock:0) COMPREPLY=($(compgen -W "acquire release renew" -- "$cur")) ;;
    event:0) COMPREPLY=($(compgen -W "set clear wait" -- "$cur")) ;;
    help:0)
        COMPREPLY=($(compgen -W "$commands" -- "$cur"))
        ;;
    esac
}

complete -F _forq forq
