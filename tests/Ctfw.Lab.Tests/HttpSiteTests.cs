using System.Text.RegularExpressions;

namespace Ctfw.Lab.Tests;

public sealed class HttpSiteTests
{
    private const string Prefix = "/tmp/ctfw-traffic-test";

    [Fact]
    public void NginxConfig_TwoFamilies_ListensOnEachAddressAndRunsAsRoot()
    {
        string conf = HttpSite.NginxConfig(Prefix, ["10.99.2.2:80", "[fd99:2::2]:80"], workers: 2);

        Assert.Contains("\n        listen 10.99.2.2:80;\n", conf, StringComparison.Ordinal);
        Assert.Contains("\n        listen [fd99:2::2]:80;\n", conf, StringComparison.Ordinal);
        Assert.Contains("\nuser root;\n", conf, StringComparison.Ordinal);
        Assert.Contains("\nworker_processes 2;\n", conf, StringComparison.Ordinal);
        Assert.Contains($"\npid \"{Prefix}/nginx.pid\";\n", conf, StringComparison.Ordinal);
        Assert.Contains($"root \"{Prefix}/www\";", conf, StringComparison.Ordinal);
        Assert.Contains("access_log off;", conf, StringComparison.Ordinal);
        Assert.Contains("error_log stderr", conf, StringComparison.Ordinal);
    }

    [Fact]
    public void NginxConfig_EveryPathItNames_IsUnderThePrefix()
    {
        string conf = HttpSite.NginxConfig(Prefix, ["10.99.2.2:80"], workers: 1);

        MatchCollection quoted = Regex.Matches(conf, "\"([^\"]*)\"");
        Assert.Equal(7, quoted.Count); // pid, five temp paths, root
        Assert.All(quoted, m => Assert.StartsWith(Prefix + "/", m.Groups[1].Value, StringComparison.Ordinal));
        Assert.DoesNotContain("/var/", conf, StringComparison.Ordinal);
        Assert.DoesNotContain("daemon", conf, StringComparison.Ordinal); // given by -g, which may not repeat it
    }

    [Fact]
    public void NginxConfig_Braces_Balance()
    {
        string conf = HttpSite.NginxConfig(Prefix, ["10.99.2.2:80", "[fd99:2::2]:80"], workers: 1);

        int depth = 0;
        foreach (char c in conf)
        {
            depth += c == '{' ? 1 : c == '}' ? -1 : 0;
            Assert.True(depth >= 0);
        }
        Assert.Equal(0, depth);
        Assert.Equal(3, conf.Count(c => c == '{'));
    }

    [Fact]
    public void NginxConfig_BadArguments_Throw()
    {
        Assert.Throws<ArgumentException>(() => HttpSite.NginxConfig(Prefix, [], workers: 1));
        Assert.Throws<ArgumentOutOfRangeException>(() => HttpSite.NginxConfig(Prefix, ["10.99.2.2:80"], workers: 0));
        Assert.Throws<ArgumentException>(() => HttpSite.NginxConfig("/tmp/a\"b", ["10.99.2.2:80"], workers: 1));
    }

    [Fact]
    public void WrkScript_LargeEvery_AlternatesPaths()
    {
        string script = HttpSite.WrkScript(50);

        Assert.Contains("n % 50 == 0", script, StringComparison.Ordinal);
        Assert.Contains($"wrk.format(nil, \"{HttpSite.LargePath}\")", script, StringComparison.Ordinal);
        Assert.Contains($"wrk.format(nil, \"{HttpSite.SmallPath}\")", script, StringComparison.Ordinal);
    }

    [Fact]
    public void WrkScript_Zero_OnlySmallFile()
    {
        string script = HttpSite.WrkScript(0);

        Assert.DoesNotContain(HttpSite.LargePath, script, StringComparison.Ordinal);
        Assert.Contains(HttpSite.SmallPath, script, StringComparison.Ordinal);
    }

    [Fact]
    public void Write_CreatesConfigScriptAndBothFiles()
    {
        DirectoryInfo dir = Directory.CreateTempSubdirectory("ctfw-lab-test-");
        try
        {
            var site = new HttpSite(dir.FullName);
            site.Write(["10.99.2.2:80"], workers: 1, largeEvery: 10);

            Assert.Equal(HttpSite.NginxConfig(dir.FullName, ["10.99.2.2:80"], 1), File.ReadAllText(site.ConfigPath));
            Assert.Equal(HttpSite.WrkScript(10), File.ReadAllText(site.WrkScriptPath));
            Assert.Equal(HttpSite.SmallBytes, new FileInfo(Path.Combine(site.WebRoot, "small.txt")).Length);
            Assert.Equal(HttpSite.LargeBytes, new FileInfo(Path.Combine(site.WebRoot, "large.bin")).Length);
            Assert.True(Directory.Exists(Path.Combine(dir.FullName, "tmp")));
            Assert.Equal(["nginx", "-e", "stderr", "-p", dir.FullName + "/", "-c", site.ConfigPath, "-g", "daemon off;"], site.NginxArgs());
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }
}
