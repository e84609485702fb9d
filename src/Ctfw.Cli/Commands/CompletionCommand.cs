using System.CommandLine;

namespace Ctfw.Cli.Commands;

/// <summary>
/// `ctfw completion bash`: a bash completion script. The script asks ctfw itself what may come next
/// (System.CommandLine's `[suggest:POSITION]` directive over the line typed so far), so commands,
/// options and fixed values complete from the very definitions the parser uses; where ctfw knows no
/// candidates (a file name), bash completes file names.
/// </summary>
internal static class CompletionCommand
{
    public const string BashScript = """
        # bash completion for ctfw (from `ctfw completion bash`): source it, or put it in
        # /etc/bash_completion.d/ctfw.
        _ctfw_complete()
        {
            local cur="${COMP_WORDS[COMP_CWORD]}"
            # The line up to the cursor, with ctfw's own name first whatever path started it.
            local line="${COMP_LINE:0:COMP_POINT}"
            line="ctfw${line#"${COMP_WORDS[0]}"}"
            local IFS=$'\n'
            local candidates
            candidates="$("${COMP_WORDS[0]}" "[suggest:${#line}]" "$line" 2>/dev/null)"
            COMPREPLY=($(compgen -W "$candidates" -- "$cur"))
            # Nothing ctfw knows fits (a capture or rules file, a path): file names.
            if [ ${#COMPREPLY[@]} -eq 0 ]; then
                COMPREPLY=($(compgen -f -- "$cur"))
            fi
        }
        complete -o filenames -F _ctfw_complete ctfw
        """;

    public static CtfwCommand Create()
    {
        var command = new CtfwCommand("completion", "print a shell completion script: `source <(ctfw completion bash)`", "bash")
        {
            Details = """
                Prints a bash completion script on stdout. Load it in the current shell with
                `source <(ctfw completion bash)`, or for every shell with
                `ctfw completion bash > /etc/bash_completion.d/ctfw`. Commands, options and option values
                with a fixed set of choices complete; file names complete where ctfw knows no candidates.
                """,
            ExitCodes = [(0, "script printed"), (CommandLine.UsageExit, "usage error (a shell other than bash)")],
        };
        var shell = new Argument<string>("SHELL") { Arity = ArgumentArity.ExactlyOne };
        shell.CompletionSources.Add("bash");
        command.Arguments.Add(shell);
        command.SetAction(r =>
        {
            string name = r.GetValue(shell) ?? "";
            if (name != "bash")
                return Program.Fail($"completion {name}: only bash is supported");
            Console.Out.WriteLine(BashScript);
            return 0;
        });
        return command;
    }
}
