"""Word tables for `libmaestro.analysis.shell`: bash keywords, builtins and command wrappers.

The builtin list is bash 5.2's "SHELL BUILTIN COMMANDS" section of `man bash` (the same names
`compgen -b` prints), which is where the dependency rundown of the original maestro took its
list from. The wrapper tables describe just enough of each program's command line to find the
command it runs: which options take a separate value, and how many positional words come before
the command.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "BUILTINS",
    "FIND_EXEC_ACTIONS",
    "KEYWORDS",
    "PARALLEL_SEPARATORS",
    "SHELLS",
    "WRAPPERS",
    "Wrapper",
]

# `compgen -k`: reserved words. `time` and `coproc` are here as well, so a script's `time`
# is never reported as the external /usr/bin/time.
KEYWORDS = frozenset(
    {
        "!",
        "[[",
        "]]",
        "{",
        "}",
        "case",
        "coproc",
        "do",
        "done",
        "elif",
        "else",
        "esac",
        "fi",
        "for",
        "function",
        "if",
        "in",
        "select",
        "then",
        "time",
        "until",
        "while",
    }
)

BUILTINS = frozenset(
    {
        ".",
        ":",
        "[",
        "alias",
        "bg",
        "bind",
        "break",
        "builtin",
        "caller",
        "cd",
        "command",
        "compgen",
        "complete",
        "compopt",
        "continue",
        "declare",
        "dirs",
        "disown",
        "echo",
        "enable",
        "eval",
        "exec",
        "exit",
        "export",
        "false",
        "fc",
        "fg",
        "getopts",
        "hash",
        "help",
        "history",
        "jobs",
        "kill",
        "let",
        "local",
        "logout",
        "mapfile",
        "popd",
        "printf",
        "pushd",
        "pwd",
        "read",
        "readarray",
        "readonly",
        "return",
        "set",
        "shift",
        "shopt",
        "source",
        "suspend",
        "test",
        "times",
        "trap",
        "true",
        "type",
        "typeset",
        "ulimit",
        "umask",
        "unalias",
        "unset",
        "wait",
    }
)


@dataclass(frozen=True, slots=True)
class Wrapper:
    """How to find the command that a wrapper program (or builtin) runs.

    Attributes:
        short_values: Short options that take a value (`-n 1` or `-n1`).
        long_values: Long options that take a value when written without `=` (`--jobs 4`).
        positionals: Words between the options and the command (`timeout`'s duration).
        assignments: Whether `NAME=value` words may come before the command (`env`, `sudo`).
        lookups: Options that make it look a command up instead of running it (`command -v`).
        until: Words that end the command (`parallel`'s `:::`); empty means "end of line".
    """

    short_values: frozenset[str] = frozenset()
    long_values: frozenset[str] = frozenset()
    positionals: int = 0
    assignments: bool = False
    lookups: frozenset[str] = frozenset()
    until: frozenset[str] = frozenset()


PARALLEL_SEPARATORS = frozenset({":::", "::::", ":::+", "::::+"})

# Keyed by the command's basename, so `/usr/bin/env` and `/usr/bin/time` unwrap too.
WRAPPERS: dict[str, Wrapper] = {
    "env": Wrapper(
        short_values=frozenset("uCSP"),
        long_values=frozenset({"--unset", "--chdir", "--split-string"}),
        assignments=True,
    ),
    "xargs": Wrapper(
        # GNU's -e/-i/-l take their optional value attached, so they are plain flags here.
        short_values=frozenset("adEILnPsJRS"),
        long_values=frozenset(
            {
                "--arg-file",
                "--delimiter",
                "--max-args",
                "--max-procs",
                "--max-chars",
                "--process-slot-var",
            }
        ),
    ),
    "sudo": Wrapper(
        short_values=frozenset("ugCDprtTUR"),
        long_values=frozenset(
            {
                "--user",
                "--group",
                "--chdir",
                "--chroot",
                "--prompt",
                "--role",
                "--type",
                "--command-timeout",
                "--other-user",
                "--close-from",
                "--host",
            }
        ),
        assignments=True,
    ),
    # The keyword only knows -p; GNU time's -f/-o are here for `/usr/bin/time -f '%M' cmd`.
    "time": Wrapper(short_values=frozenset("fo"), long_values=frozenset({"--format", "--output"})),
    "nice": Wrapper(short_values=frozenset("n"), long_values=frozenset({"--adjustment"})),
    "exec": Wrapper(short_values=frozenset("a")),
    "command": Wrapper(lookups=frozenset({"-v", "-V"})),
    "nohup": Wrapper(),
    "timeout": Wrapper(
        short_values=frozenset("sk"),
        long_values=frozenset({"--signal", "--kill-after"}),
        positionals=1,
    ),
    "stdbuf": Wrapper(
        short_values=frozenset("ioe"), long_values=frozenset({"--input", "--output", "--error"})
    ),
    "parallel": Wrapper(
        short_values=frozenset("jnNSIaEdCsLPM"),
        long_values=frozenset(
            {
                "--jobs",
                "--max-args",
                "--max-replace-args",
                "--max-lines",
                "--max-chars",
                "--sshlogin",
                "--sshloginfile",
                "--slf",
                "--arg-file",
                "--joblog",
                "--results",
                "--res",
                "--tmpdir",
                "--delay",
                "--timeout",
                "--retries",
                "--colsep",
                "--delimiter",
                "--halt",
                "--halt-on-error",
                "--memfree",
                "--load",
                "--env",
                "--workdir",
                "--wd",
                "--basefile",
                "--bf",
                "--transfer",
                "--return",
                "--header",
                "--tagstring",
                "--replace",
                "--eof",
                "--block",
                "--block-size",
                "--nice",
                "--sshdelay",
                "--termseq",
                "--limit",
            }
        ),
        until=PARALLEL_SEPARATORS,
    ),
}

# `sh -c 'script'`: the shells whose `-c` argument is itself a script to analyse.
SHELLS = frozenset({"sh", "bash", "dash", "ksh", "zsh"})

# find's actions that run a command; the command ends at `;` or `+`.
FIND_EXEC_ACTIONS = frozenset({"-exec", "-execdir", "-ok", "-okdir"})
