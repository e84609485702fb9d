using System.Globalization;
using System.Net;
using System.Net.Sockets;

namespace Ctfw.Daemon.Tests;

/// <summary>
/// Real FTP and TFTP through `ctfw run` (issue 17): Debian's vsftpd and tftpd-hpa in the server
/// namespace, curl in the client namespace, a FORWARD ruleset that admits only the control
/// connections as NEW and everything else by ESTABLISHED/RELATED. With the raw table's
/// `CT --helper ftp|tftp` every transfer mode passes (passive EPSV and PASV, active EPRT and PORT,
/// IPv4 and IPv6); with the same filter table and no raw table — the kernel's default, no automatic
/// assignment — the data connections are NEW and dropped, so the transfers fail.
/// </summary>
[Trait("Tier", "Privileged")]
[Collection(PrivilegedCollection.Name)]
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
public sealed class FtpHelperLiveTests : IDisposable
{
    private const string Filter = """
        *filter
        :INPUT ACCEPT [0:0]
        :FORWARD DROP [0:0]
        :OUTPUT ACCEPT [0:0]
        -A FORWARD -m conntrack --ctstate INVALID -j DROP
        -A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
        -A FORWARD -p tcp -m tcp --dport 21 -m conntrack --ctstate NEW -j ACCEPT
        -A FORWARD -p udp -m udp --dport 69 -m conntrack --ctstate NEW -j ACCEPT
        -A FORWARD -j DROP
        COMMIT

        """;

    private const string Raw = """
        *raw
        :PREROUTING ACCEPT [0:0]
        :OUTPUT ACCEPT [0:0]
        -A PREROUTING -p tcp -m tcp --dport 21 -j CT --helper ftp
        -A PREROUTING -p udp -m udp --dport 69 -j CT --helper tftp
        COMMIT

        """;

    /// <summary>curl options for each FTP mode: passive EPSV (curl's default), passive PASV (227), active EPRT, active PORT.</summary>
    private static readonly (string Mode, string[] Options)[] s_modesV4 =
    [
        ("EPSV", []),
        ("PASV", ["--disable-epsv"]),
        ("EPRT", ["-P", "-"]),
        ("PORT", ["-P", "-", "--disable-eprt"]),
    ];

    /// <summary>IPv6 has no PASV/PORT (RFC 2428): curl uses EPSV and EPRT.</summary>
    private static readonly (string Mode, string[] Options)[] s_modesV6 =
    [
        ("EPSV", []),
        ("EPRT", ["-P", "-"]),
    ];

    private readonly DirectoryInfo _dir = Directory.CreateTempSubdirectory("ctfw-ftp-");
    private readonly byte[] _blob = new byte[256 * 1024 + 17];

    public FtpHelperLiveTests()
    {
        new Random(17).NextBytes(_blob);
        // vsftpd's anonymous root must not be writable by its ftp user (it refuses to chroot there).
        string root = Path.Combine(_dir.FullName, "ftp");
        Directory.CreateDirectory(Path.Combine(root, "pub"));
        File.WriteAllBytes(Path.Combine(root, "pub", "blob"), _blob);
        File.SetUnixFileMode(Path.Combine(root, "pub", "blob"), UnixFileMode.UserRead | UnixFileMode.GroupRead | UnixFileMode.OtherRead);
        File.SetUnixFileMode(Path.Combine(root, "pub"), ReadExecute);
        File.SetUnixFileMode(root, ReadExecute);
        string tftp = Path.Combine(_dir.FullName, "tftp");
        Directory.CreateDirectory(tftp);
        File.WriteAllBytes(Path.Combine(tftp, "blob"), _blob);
        File.SetUnixFileMode(Path.Combine(tftp, "blob"), UnixFileMode.UserRead | UnixFileMode.GroupRead | UnixFileMode.OtherRead);
        File.SetUnixFileMode(tftp, ReadExecute);
        File.SetUnixFileMode(_dir.FullName, ReadExecute | UnixFileMode.UserWrite);
        Directory.CreateDirectory("/var/run/vsftpd/empty"); // vsftpd's secure_chroot_dir, as its Debian package makes it
    }

    private const UnixFileMode ReadExecute =
        UnixFileMode.UserRead | UnixFileMode.UserExecute | UnixFileMode.GroupRead | UnixFileMode.GroupExecute
        | UnixFileMode.OtherRead | UnixFileMode.OtherExecute;

    public void Dispose() => _dir.Delete(recursive: true);

    [Fact(Timeout = 300_000)]
    public async Task Run_RawTableAssignsFtpAndTftp_EveryTransferModePassesByRelated()
    {
        using var lab = new GatewayLab();
        using ChildProcess ftpd = StartServers(lab, out ChildProcess tftpd);
        using (tftpd)
        {
            string rules = WriteRules("helpers.rules", Raw + Filter);
            using var ctfw = CtfwProcess.Start(lab.Gateway, "run", "--rules", rules, "--queue", "13", "--install", "FORWARD", "--control", Control);
            Assert.True(ctfw.WaitForLine(OutputStream.StdErr, "ctfw: running", TimeSpan.FromSeconds(30)), ctfw.StdErr);

            foreach ((IPAddress server, (string Mode, string[] Options)[] modes) in new[] { (lab.ServerV4, s_modesV4), (lab.ServerV6, s_modesV6) })
            {
                foreach ((string mode, string[] options) in modes)
                {
                    (int exit, string error) = await Fetch(lab, FtpUrl(server), options, TimeSpan.FromSeconds(30));
                    Assert.True(exit == 0, $"FTP {mode} from {server} through ctfw: curl exit {exit}: {error}\nctfw: {ctfw.StdErr}");
                    AssertSameFile(mode);
                }
                (int tftpExit, string tftpError) = await Fetch(lab, TftpUrl(server), [], TimeSpan.FromSeconds(30));
                Assert.True(tftpExit == 0, $"TFTP from {server} through ctfw: curl exit {tftpExit}: {tftpError}\nctfw: {ctfw.StdErr}");
                AssertSameFile("TFTP");
            }

            // Each data connection's first packet was RELATED in ctfw's table (6 FTP transfers, 2
            // TFTP answers; later packets of each are ESTABLISHED), and nothing was dropped.
            Dictionary<string, long> stats = Stats();
            Assert.True(stats.GetValueOrDefault("state.RELATED") >= 8, $"RELATED packets: {stats.GetValueOrDefault("state.RELATED")}");
            Assert.Equal(0, stats.GetValueOrDefault("verdict.drop"));

            // ctfw's table still holds the closed connections (TIME_WAIT): the control connections
            // with their helper, the data connections with their master (the control connection).
            ToolResult list = CtfwProcess.Run(TimeSpan.FromSeconds(30), "conntrack", "-L", "--control", Control);
            Assert.True(list.ExitCode == 0, list.StdErr);
            string[] lines = list.StdOut.Split('\n', StringSplitOptions.RemoveEmptyEntries);
            Assert.Contains(lines, l => l.Contains("dport=21 ", StringComparison.Ordinal) && l.Contains(" helper=ftp ", StringComparison.Ordinal));
            Assert.Contains(lines, l => l.Contains("master-dport=21", StringComparison.Ordinal) && !l.Contains("dport=21 ", StringComparison.Ordinal));
            Assert.Contains(lines, l => l.StartsWith("udp", StringComparison.Ordinal) && l.Contains("master-dport=69", StringComparison.Ordinal));

            ctfw.Signal(ChildProcess.SigTerm);
            Assert.Equal(0, ctfw.WaitForExit(TimeSpan.FromSeconds(20)));
        }
    }

    [Fact(Timeout = 300_000)]
    public async Task Run_NoRawTable_DataConnectionsAreNewAndDropped_TransfersFail()
    {
        using var lab = new GatewayLab();
        using ChildProcess ftpd = StartServers(lab, out ChildProcess tftpd);
        using (tftpd)
        {
            // Sanity: without ctfw (nothing filters in the gateway) the same fetches work.
            (int pre, string preError) = await Fetch(lab, FtpUrl(lab.ServerV4), [], TimeSpan.FromSeconds(30));
            Assert.True(pre == 0, $"FTP without ctfw: curl exit {pre}: {preError}");
            (int preT, string preTError) = await Fetch(lab, TftpUrl(lab.ServerV4), [], TimeSpan.FromSeconds(30));
            Assert.True(preT == 0, $"TFTP without ctfw: curl exit {preT}: {preTError}");

            // The weak configuration: the same filter table, no raw table, so no helper.
            string rules = WriteRules("nohelper.rules", Filter);
            using var ctfw = CtfwProcess.Start(lab.Gateway, "run", "--rules", rules, "--queue", "14", "--install", "FORWARD", "--control", Control);
            Assert.True(ctfw.WaitForLine(OutputStream.StdErr, "ctfw: running", TimeSpan.FromSeconds(30)), ctfw.StdErr);

            // The control connection gets through (login works), the data connection does not.
            foreach ((string mode, string[] options) in new[] { s_modesV4[0], s_modesV4[3] })
            {
                (int exit, string error) = await Fetch(lab, FtpUrl(lab.ServerV4), [.. options, "--connect-timeout", "4", "--max-time", "8"], TimeSpan.FromSeconds(30));
                Assert.True(exit != 0, $"FTP {mode} passed without a helper: the data connection should have been NEW and dropped ({error})");
            }
            (int tftp, _) = await Fetch(lab, TftpUrl(lab.ServerV4), ["--max-time", "8"], TimeSpan.FromSeconds(30));
            Assert.True(tftp != 0, "TFTP passed without a helper: the server's answer from a new port should have been NEW and dropped");
            Dictionary<string, long> stats = Stats();
            Assert.Equal(0, stats.GetValueOrDefault("state.RELATED"));
            Assert.True(stats.GetValueOrDefault("verdict.drop") > 0, "no packet was dropped");

            ctfw.Signal(ChildProcess.SigTerm);
            Assert.Equal(0, ctfw.WaitForExit(TimeSpan.FromSeconds(20)));
        }
    }

    private ChildProcess StartServers(GatewayLab lab, out ChildProcess tftpd)
    {
        // listen_ipv6 serves IPv4 too (v4-mapped); anonymous, read-only, active mode from port 20.
        string config = Path.Combine(_dir.FullName, "vsftpd.conf");
        File.WriteAllText(config, string.Join('\n',
            "listen=NO", "listen_ipv6=YES", "background=NO", "anonymous_enable=YES", "local_enable=NO", "write_enable=NO",
            $"anon_root={Path.Combine(_dir.FullName, "ftp")}", "no_anon_password=YES", "pasv_enable=YES", "port_enable=YES",
            "connect_from_port_20=YES", "seccomp_sandbox=NO", "secure_chroot_dir=/var/run/vsftpd/empty", "xferlog_enable=NO", ""));
        ChildProcess ftpd = CtfwProcess.StartCommand(Tool.InNetns(lab.Server, "vsftpd", config));
        tftpd = CtfwProcess.StartCommand(Tool.InNetns(lab.Server, "in.tftpd", "--foreground", "--secure", Path.Combine(_dir.FullName, "tftp")));
        Assert.True(WaitListening(lab, "tcp", 21) && WaitListening(lab, "udp", 69),
            $"servers did not start: vsftpd {ftpd.StdErr} in.tftpd {tftpd.StdErr}");
        return ftpd;
    }

    private static bool WaitListening(GatewayLab lab, string protocol, int port)
    {
        for (int i = 0; i < 100; i++)
        {
            string listening = Tool.RunIn(lab.Server, "ss", "-H", "-ln", protocol == "tcp" ? "-t" : "-u", "sport", "=", ":" + port.ToString(CultureInfo.InvariantCulture));
            if (listening.Trim().Length > 0)
                return true;
            Thread.Sleep(50);
        }
        return false;
    }

    private static string FtpUrl(IPAddress server) => $"ftp://{Host(server)}/pub/blob";

    private static string TftpUrl(IPAddress server) => $"tftp://{Host(server)}/blob";

    private static string Host(IPAddress a) => a.AddressFamily == AddressFamily.InterNetworkV6 ? $"[{a}]" : a.ToString();

    private string Downloaded => Path.Combine(_dir.FullName, "downloaded");

    /// <summary>curl in the client namespace into <see cref="Downloaded"/>; its exit status and stderr.</summary>
    private async Task<(int Exit, string Error)> Fetch(GatewayLab lab, string url, string[] options, TimeSpan timeout)
    {
        File.Delete(Downloaded);
        using ChildProcess curl = CtfwProcess.StartCommand(Tool.InNetns(lab.Client,
            ["curl", "-sS", "--max-time", "20", .. options, "-o", Downloaded, url]));
        int? exit = await curl.WaitForExitAsync(timeout);
        return (exit ?? -1, exit is null ? "curl did not finish" : curl.StdErr.Trim());
    }

    private void AssertSameFile(string mode)
    {
        Assert.True(File.Exists(Downloaded), $"{mode}: nothing downloaded");
        Assert.True(_blob.AsSpan().SequenceEqual(File.ReadAllBytes(Downloaded)), $"{mode}: the downloaded file differs");
    }

    private string WriteRules(string name, string text)
    {
        string path = Path.Combine(_dir.FullName, name);
        File.WriteAllText(path, text);
        return path;
    }

    private string Control => Path.Combine(_dir.FullName, "c.sock");

    private Dictionary<string, long> Stats()
    {
        ToolResult stats = CtfwProcess.Run(TimeSpan.FromSeconds(30), "stats", "--raw", "--control", Control);
        Assert.True(stats.ExitCode == 0, stats.StdErr);
        var values = new Dictionary<string, long>(StringComparer.Ordinal);
        foreach (string line in stats.StdOut.Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            string[] parts = line.Split(' ');
            values[parts[0]] = long.Parse(parts[1], CultureInfo.InvariantCulture);
        }
        return values;
    }
}
