using System.Net.Sockets;
using System.Text;
using CsCheck;
using Ctfw.Cli.Control;
using Ctfw.Cli.Daemon;

namespace Ctfw.Cli.Tests.Control;

/// <summary>
/// Property tests (CsCheck) of what the control socket reads from its peer: the conntrack filter
/// words of `list`/`delete`, the hand-over offer a new process reads from the old one, and whole
/// request lines through the real server. None throws; each either parses or says why; the server
/// answers every line and keeps serving. Each run draws new inputs; a failure prints the seed that
/// reproduces it.
/// </summary>
public sealed class ControlProtocolPropertyTests : IDisposable
{
    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    private static readonly string[] s_filterWords =
    [
        "-p", "--proto", "tcp", "udp", "icmp", "icmpv6", "6", "256", "-s", "--src", "-d", "--dst", "10.0.0.1", "10.0.0.0/33", "::1",
        "fe80::/10", "1.2.3", "--sport", "--dport", "80", "65536", "-1", "--state", "ESTABLISHED", "SYN_SENT,TIME_WAIT", "--status",
        "ASSURED", "--family", "ipv4", "ipv6", "-f", "-q", "-r", "-u", "--orig-src", "--orig-dst", "--reply-src", "--reply-dst",
        "--orig-port-src", "--orig-port-dst", "--reply-port-src", "--reply-port-dst", "--stalled", "--stalled-after", "10s", "1x",
        "--half-closed", "", " ", "=", ",", "--", "-", "\u00e9", "9999999999999999999999",
    ];

    private static readonly Gen<string> s_word = Gen.Frequency((4, Gen.OneOf(s_filterWords)), (1, Gen.String[Gen.Char, 0, 12]));

    [Fact]
    public void ConntrackFilterParse_AnyWords_ParsesOrSaysWhy() =>
        s_word.Array[0, 10].Sample(words =>
        {
            ConntrackFilter? filter = ConntrackFilter.Parse(words, out string? error);
            if (filter == null)
                Assert.False(string.IsNullOrWhiteSpace(error));
            else
                Assert.Null(error);
        }, iter: 20_000, threads: 1);

    [Fact]
    public void HandoverOfferParse_AnyLine_ParsesOrSaysWhy()
    {
        string[] fields =
        [
            "ok", "error: x", "pid=1", "pid=-1", "pid=99999999999", "queues=0-3", "queues=3-0", "queues=0-65535", "queues=-",
            "fail_closed=1", "copy_range=0", "maxlen=1024", "tag=-", "tag=", "paused=5", "q0=1,2,3,4", "q1=1,2,3", "q2=a,b,c,d",
            "q3=4294967296,0,0,0", "=", "x",
        ];
        Gen.Frequency((4, Gen.OneOf(fields)), (1, Gen.String[Gen.Char, 0, 16])).Array[0, 14]
            .Select(words => string.Join('\t', words))
            .Sample(line =>
            {
                HandoverOffer? offer = HandoverOffer.Parse(line, out string? error);
                if (offer == null)
                    Assert.NotNull(error);
                else
                    Assert.Equal(offer.QueueLast - offer.QueueFirst + 1, offer.Counters.Count);
            }, iter: 20_000, threads: 1);
    }

    [Fact]
    public void Server_AnyRequestLine_AnswersAndKeepsServing()
    {
        string path = _dir.File("ctfw-1.sock");
        using var server = ControlServer.Start(path, new FakeControlTarget());
        string[] verbs = ["stats", "list", "delete", "flush", "reload", "reload-sysctls", "", "STATS", "list\t", "delete "];
        Gen.Select(Gen.OneOf(verbs), s_word.Array[0, 6], Gen.OneOf("\t", " "),
                (verb, words, separator) => words.Length == 0 ? verb : verb + separator + string.Join(separator, words))
            .Sample(line =>
            {
                string answer = Exchange(path, line);
                Assert.EndsWith("\n", answer);
                string verb = line.Split('\t', ' ')[0];
                if (verb is not ("stats" or "list" or "delete" or "flush" or "reload" or "reload-sysctls"))
                    Assert.StartsWith("error: ", answer);
            }, iter: 300, threads: 1);
        Assert.True(ControlClient.TryRequest(path, "stats", out _, out string? last), last);
    }

    /// <summary>Sends the line and its newline, returns the whole answer.</summary>
    private static string Exchange(string path, string line)
    {
        using var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified) { ReceiveTimeout = 10_000 };
        socket.Connect(new UnixDomainSocketEndPoint(path));
        socket.Send(Encoding.UTF8.GetBytes(line + "\n"));
        var answer = new MemoryStream();
        byte[] buffer = new byte[4096];
        int n;
        while ((n = socket.Receive(buffer)) > 0)
            answer.Write(buffer, 0, n);
        return Encoding.UTF8.GetString(answer.ToArray());
    }
}
