# bash completion for recur (installed as share/bash-completion/completions/recur).
# Completes the subcommand, then the chosen subcommand's options as `recur SUB --help` lists them
# (so a new option needs no edit here), and file names everywhere else. Plain bash: it does not
# need the bash-completion package's helpers. scripts/install_check.sh checks that the
# subcommand list below is the one `recur --help` prints, and runs the function.
_recur() {
  local cur=${COMP_WORDS[COMP_CWORD]}
  local subcommands="train prepare classify tag translate sample score eval embed export info midi music-stats diagnose plot show"
  local sub="" i
  for ((i = 1; i < COMP_CWORD; i++)); do
    if [[ " $subcommands " == *" ${COMP_WORDS[i]} "* ]]; then
      sub=${COMP_WORDS[i]}
      break
    fi
  done
  if [[ -z $sub ]]; then
    if [[ $cur == -* ]]; then
      mapfile -t COMPREPLY < <(compgen -W "--help --version" -- "$cur")
    else
      mapfile -t COMPREPLY < <(compgen -W "$subcommands" -- "$cur")
    fi
    return
  fi
  if [[ $cur == -* ]]; then
    local opts
    opts=$("${COMP_WORDS[0]}" "$sub" --help 2>/dev/null | grep -oE -- '--[A-Za-z0-9][A-Za-z0-9-]*' | sort -u)
    mapfile -t COMPREPLY < <(compgen -W "$opts" -- "$cur")
    return
  fi
  compopt -o filenames 2>/dev/null
  mapfile -t COMPREPLY < <(compgen -f -- "$cur")
}
complete -F _recur recur
