namespace Ctfw.Rules;

/// <summary>
/// Bounds on what a rules file may ask for, each refused at load with a file:line:col error that
/// names it (docs/OPERATIONS.md, "Limits on input"). Without them one line of 3 000 sources and
/// 3 000 destinations compiled to 9 M rules: 28.5 s and 6.9 GB to load.
/// </summary>
/// <remarks>
/// Lists keep iptables' meaning, one compiled rule per source × destination pair (each with its
/// own counters, shown as its own line by <see cref="Ruleset.Save"/>, and acting once per matching
/// pair for LOG, jumps and rules without a target), so a list is bounded rather than turned into a
/// set match that would behave differently from the kernel's table.
/// </remarks>
public static class RulesetLimits
{
    /// <summary>
    /// Addresses in one -s or -d list. iptables-restore refuses a word over 1023 characters
    /// ("Parameter too long!", its 1024-byte parameter buffer), and 512 one-character addresses
    /// ("1,1,…", 1023 characters) is the longest list that fits: no file iptables-restore loads has more.
    /// </summary>
    public const int MaxAddressesPerList = 512;

    /// <summary>
    /// Compiled rules in the table, a list counting once per pair; counted while parsing, so a table
    /// over it is refused before it is built. A packet that walks 250 000 entries takes about 3 ms
    /// (linear evaluation, as the kernel's), so a table this big is usable only split into chains;
    /// the kernel's own cap (XT_MAX_TABLE_SIZE, 512 MiB) holds about 3.5 M of the simplest rules.
    /// At the limit a load takes under a second and 0.2 GB (lists) up to about 7 s and 1.1 GB at
    /// peak (250 000 lines filling <see cref="MaxFileBytes"/>); docs/OPERATIONS.md has the figures.
    /// </summary>
    public const int MaxRules = 250_000;

    /// <summary>
    /// Bytes of a rules file (256 per rule at <see cref="MaxRules"/>), checked before it is read and
    /// again while reading: a device or a pipe has no length to check.
    /// </summary>
    public const long MaxFileBytes = 64L * 1024 * 1024;
}
