/** Shell completion, generated from the command tree itself, so it never drifts from the commands. */
import type { Command } from 'commander';

const DAEMON_ROLES = ['up', 'api', 'conductor', 'agent'];

function words(cmd: Command): { subcommands: string[]; options: string[] } {
  return {
    subcommands: cmd.commands.map((c) => c.name()),
    options: [...cmd.options.map((o) => o.long).filter((o): o is string => Boolean(o)), '--help'],
  };
}

/** Every command path ("", "server", "server create", …) with the words that may follow it. */
function table(program: Command): Array<{ path: string; words: string[] }> {
  const rows: Array<{ path: string; words: string[] }> = [];
  const walk = (cmd: Command, path: string[]) => {
    const w = words(cmd);
    const extra = path.length === 0 ? DAEMON_ROLES : [];
    rows.push({ path: path.join(' '), words: [...w.subcommands, ...extra, ...w.options] });
    for (const sub of cmd.commands) walk(sub, [...path, sub.name()]);
  };
  walk(program, []);
  return rows;
}

export function completionScript(program: Command, shell: 'bash' | 'zsh'): string {
  const cases = table(program)
    .map((r) => `    "${r.path}") words="${r.words.join(' ')}" ;;`)
    .join('\n');
  const body = `# stratus shell completion (${shell}): eval "$(stratus completion ${shell})"
_stratus_complete() {
  local cur path="" i w words
  cur="\${COMP_WORDS[COMP_CWORD]}"
  for ((i = 1; i < COMP_CWORD; i++)); do
    w="\${COMP_WORDS[i]}"
    case "$w" in -*) continue ;; esac
    if [ -z "$path" ]; then path="$w"; else path="$path $w"; fi
  done
  case "$path" in
${cases}
    *) words="" ;;
  esac
  COMPREPLY=( $(compgen -W "$words" -- "$cur") )
}
`;
  if (shell === 'bash') return `${body}complete -o default -F _stratus_complete stratus\n`;
  return `autoload -U +X bashcompinit && bashcompinit\n${body}complete -o default -F _stratus_complete stratus\n`;
}
