using Ctfw.Lab.Network;
using Ctfw.Packets;
using static Ctfw.Lab.Network.Side;
using static Ctfw.Lab.Scenarios.Expect;
using static Ctfw.Lab.Scenarios.TcpStates;

namespace Ctfw.Lab.Scenarios;

// FTP and TFTP with and without the conntrack helpers (issue 17). The gateway assigns ftp to TCP port 21 and
// tftp to UDP port 69 (LabHelpers); the same sessions on 2121 and 6969 run without a helper. kernel-conntrack.md
// leaves helpers out, so the "spec" verdicts are what nf_conntrack_ftp.c, nf_conntrack_tftp.c and
// nf_conntrack_expect.c (6.18) give by reading them. Helpers run at confirm (nf_confirm, POST_ROUTING), after the
// FORWARD hook the recorder logs in: a packet a helper drops is recorded with the ctstate FORWARD saw, and the
// drop shows as the kernel's "nf_ct_ftp: dropping packet: …" message in the .diag.tsv.
public static partial class KernelScenarios
{
    /// <summary>
    /// The control connection's opening as a real server and client speak it: handshake, banner, USER, 331.
    /// The helper reads a segment only if it starts right after one that ended in '\n' in its direction, so
    /// the first segment each way (banner, USER) is never read; after these the next command is.
    /// </summary>
    private static ScenarioBuilder FtpLogin(this ScenarioBuilder s, TcpFlow f) => s
        .Handshake(f)
        .Send(f.Text(Server, "220 ctfw lab FTP\r\n"), EstReply(Established))
        .Send(f.Text(Client, "USER anonymous\r\n"), EstOrig(Established))
        .Send(f.Text(Server, "331 Password required\r\n"), EstReply(Established))
        .Send(f.Text(Client, "PASS lab@\r\n"), EstOrig(Established))
        .Send(f.Text(Server, "230 Logged in\r\n"), EstReply(Established));

    /// <summary>The text of <c>PORT</c> for an IPv4 address and port: <c>PORT 10,99,1,2,156,64\r\n</c>.</summary>
    private static string PortCommand(string address, ushort port) =>
        $"PORT {address.Replace('.', ',')},{port >> 8},{port & 0xFF}\r\n";

    /// <summary>The text of a 227 reply: <c>227 Entering Passive Mode (10,99,2,2,195,80).\r\n</c>.</summary>
    private static string PasvReply(string address, ushort port) =>
        $"227 Entering Passive Mode ({address.Replace('.', ',')},{port >> 8},{port & 0xFF}).\r\n";

    private static string EpsvReply(ushort port) => $"229 Entering Extended Passive Mode (|||{port}|)\r\n";

    private const string FtpPartial =
        "help() finds a prefix of a pattern (or numbers that break off) at a segment's start: 'partial matching', " +
        "NF_DROP at confirm (POST_ROUTING), after FORWARD saw the packet ESTABLISHED; ctfw drops it as helper-partial";

    private static KernelScenario FtpActivePort() => Scenario("ftp_active_port",
        "Active FTP on port 21 with the helper: after the login the client's PORT announces its own address and port " +
        "40000; the server's data connection from port 20 to that port matches the expectation (server address, any " +
        "source port, client address and port 40000): its SYN is RELATED (ORIGINAL, SYN_SENT); once answered it is " +
        "ESTABLISHED like any connection, through data and the close.",
        s =>
        {
            var f = new TcpFlow(false, 40100, 21, 0x1F00_0001, 0x2F00_0001);
            var d = new TcpFlow(false, 40000, 20, 0x3F00_0001, 0x4F00_0001);
            s.FtpLogin(f)
                .Send(f.Text(Client, PortCommand(LabAddresses.ClientV4, 40000)), EstOrig(Established))
                .Send(f.Text(Server, "200 PORT command successful\r\n"), EstReply(Established))
                .Send(f.Text(Client, "RETR notes.txt\r\n"), EstOrig(Established))
                .Send(d.Syn(Server), RelOrig(SynSent))
                .Send(d.SynAck(Client), EstReply(SynRecv))
                .Send(d.Ack(Server), EstOrig(Established))
                .Send(f.Text(Server, "150 Opening data connection\r\n"), EstReply(Established))
                .Send(d.Data(Server, 700), EstOrig(Established))
                .Send(d.Ack(Client), EstReply(Established))
                .Send(d.Fin(Server), EstOrig(FinWait))
                .Send(d.Fin(Client), EstReply(LastAck))
                .Send(d.Ack(Server), EstOrig(TimeWait))
                .Send(f.Text(Server, "226 Transfer complete\r\n"), EstReply(Established));
        });

    private static KernelScenario FtpPassivePasv() => Scenario("ftp_passive_pasv",
        "Passive FTP on port 21 with the helper: the server's 227 reply announces its address and port 50000 (the " +
        "numbers are read from the first digit on); the client's data SYN to it matches the expectation (client " +
        "address, any source port, server address and port 50000): RELATED (ORIGINAL, SYN_SENT), then ESTABLISHED.",
        s =>
        {
            var f = new TcpFlow(false, 40101, 21, 0x1F01_0001, 0x2F01_0001);
            var d = new TcpFlow(false, 40001, 50000, 0x3F01_0001, 0x4F01_0001);
            s.FtpLogin(f)
                .Send(f.Text(Client, "PASV\r\n"), EstOrig(Established))
                .Send(f.Text(Server, PasvReply(LabAddresses.ServerV4, 50000)), EstReply(Established))
                .Send(f.Text(Client, "LIST\r\n"), EstOrig(Established))
                .Send(d.Syn(Client), RelOrig(SynSent))
                .Send(d.SynAck(Server), EstReply(SynRecv))
                .Send(d.Ack(Client), EstOrig(Established))
                .Send(d.Data(Server, 300), EstReply(Established))
                .Send(d.Fin(Server), EstReply(FinWait));
        });

    private static KernelScenario FtpEpsv() => Scenario("ftp_epsv",
        "EPSV on IPv4 and IPv6 (port 21, helper): the 229 reply '(|||port|)' names no address; the expectation takes " +
        "the server's own (and the client's as source), so the client's data SYN to the port is RELATED in both " +
        "families. A 229 whose port is 0 or not terminated by the delimiter is 'partial': dropped (after FORWARD).",
        s =>
        {
            var f = new TcpFlow(false, 40102, 21, 0x1F02_0001, 0x2F02_0001);
            var d = new TcpFlow(false, 40002, 50002, 0x3F02_0001, 0x4F02_0001);
            var f6 = new TcpFlow(true, 40103, 21, 0x1F03_0001, 0x2F03_0001);
            var d6 = new TcpFlow(true, 40003, 50003, 0x3F03_0001, 0x4F03_0001);
            s.FtpLogin(f)
                .Send(f.Text(Client, "EPSV\r\n"), EstOrig(Established))
                .Send(f.Text(Server, EpsvReply(50002)), EstReply(Established))
                .Send(d.Syn(Client), RelOrig(SynSent))
                .Send(d.SynAck(Server), EstReply(SynRecv))
                .Send(d.Ack(Client), EstOrig(Established))
                .Send(f.Text(Client, "EPSV\r\n"), EstOrig(Established))
                .Send(f.Text(Server, "229 Entering Extended Passive Mode (|||0|)\r\n"), EstReply(Established))
                .FtpLogin(f6)
                .Send(f6.Text(Client, "EPSV\r\n"), EstOrig(Established))
                .Send(f6.Text(Server, EpsvReply(50003)), EstReply(Established))
                .Send(d6.Syn(Client), RelOrig(SynSent))
                .Send(d6.SynAck(Server), EstReply(SynRecv))
                .Send(d6.Ack(Client), EstOrig(Established));
        });

    private static KernelScenario Ftp6Eprt() => Scenario("ftp6_eprt",
        "EPRT on an IPv6 control connection (port 21, helper): '|2|fd99:1::2|40004|' expects the server's data " +
        "connection to the client's port 40004: its SYN from port 20 is RELATED. An EPRT naming the other family " +
        "('|1|10.99.1.2|…|') is refused by try_eprt, which find_pattern reports as 'partial': the kernel drops it " +
        "(after FORWARD) and expects nothing, so a SYN to its port is NEW.",
        s =>
        {
            var f = new TcpFlow(true, 40104, 21, 0x1F04_0001, 0x2F04_0001);
            var d = new TcpFlow(true, 40004, 20, 0x3F04_0001, 0x4F04_0001);
            var wrong = new TcpFlow(true, 40005, 20, 0x3F05_0001, 0x4F05_0001);
            s.FtpLogin(f)
                .Send(f.Text(Client, $"EPRT |2|{LabAddresses.ClientV6}|40004|\r\n"), EstOrig(Established))
                .Send(f.Text(Server, "200 EPRT command successful\r\n"), EstReply(Established))
                .Send(d.Syn(Server), RelOrig(SynSent))
                .Send(d.SynAck(Client), EstReply(SynRecv))
                .Send(d.Ack(Server), EstOrig(Established))
                .Send(f.Text(Client, $"EPRT |1|{LabAddresses.ClientV4}|40005|\r\n"), EstOrig(Established))
                .Send(wrong.Syn(Server), NewOrig(SynSent));
        });

    private static KernelScenario FtpSplitCommand() => Scenario("ftp_split_command",
        "A PORT command split across two segments: the first ('PO') is a prefix of the pattern, 'partial': the kernel " +
        "drops it at confirm (FORWARD saw it ESTABLISHED; the TCP state took it) without noting where the next line " +
        "starts; the rest ('RT …') does not start after a '\\n', so it is not read; the whole line resent at the first " +
        "part's sequence number is, and the data SYN to the announced port is RELATED.",
        s =>
        {
            var f = new TcpFlow(false, 40106, 21, 0x1F06_0001, 0x2F06_0001);
            var d = new TcpFlow(false, 40006, 20, 0x3F06_0001, 0x4F06_0001);
            string line = PortCommand(LabAddresses.ClientV4, 40006);
            s.FtpLogin(f);
            uint start = f.Nxt(Client);
            s.Send(f.Text(Client, line[..2]), EstOrig(Established))
                .Send(f.Text(Client, line[2..]), EstOrig(Established))
                .Send(f.Ack(Server), EstReply(Established))
                .Send(f.Text(Client, line, seq: start), EstOrig(Established))
                .Send(f.Text(Server, "200 PORT command successful\r\n"), EstReply(Established))
                .Send(d.Syn(Server), RelOrig(SynSent))
                .Send(d.SynAck(Client), EstReply(SynRecv));
        });

    private static KernelScenario FtpForeignAddress() => Scenario("ftp_foreign_address",
        "PORT and 227 announcing an address other than the sender's (FXP, or a client behind NAT): with the module's " +
        "default loose=0 the helper expects nothing, so the data SYNs to the announced ports are NEW. Numbers outside " +
        "0..255 are not range-checked, the shifted values are ORed: '10,99,1,258' reads as 10.99.1.2 (1 << 8 | 258), the " +
        "client's own address, so that PORT does expect and its data SYN is RELATED.",
        s =>
        {
            var f = new TcpFlow(false, 40107, 21, 0x1F07_0001, 0x2F07_0001);
            var d1 = new TcpFlow(false, 40007, 20, 0x3F07_0001, 0x4F07_0001);
            var d2 = new TcpFlow(false, 40008, 50008, 0x3F08_0001, 0x4F08_0001);
            s.FtpLogin(f)
                .Send(f.Text(Client, PortCommand("10.99.1.99", 40007)), EstOrig(Established))
                .Send(f.Text(Server, "200 PORT command successful\r\n"), EstReply(Established))
                .Send(d1.Syn(Server), NewOrig(SynSent))
                .Send(f.Text(Client, "PASV\r\n"), EstOrig(Established))
                .Send(f.Text(Server, PasvReply("10.99.2.77", 50008)), EstReply(Established))
                .Send(d2.Syn(Client), NewOrig(SynSent))
                .Send(f.Text(Client, "PORT 10,99,1,258,156,73\r\n"), EstOrig(Established))
                .Send(f.Text(Server, "200 PORT command successful\r\n"), EstReply(Established))
                .Send(new TcpFlow(false, 40009, 20, 0x3F09_0001, 0x4F09_0001).Syn(Server), RelOrig(SynSent));
        });

    private static KernelScenario FtpSecondPortReplaces() => Scenario("ftp_second_port_replaces",
        "Two PORT commands before any data connection: ftp's policy allows one expectation per master " +
        "(max_expected 1), so the second evicts the first. The server's SYN to the first port is NEW, to the second " +
        "RELATED. A second 227 does the same in the other direction.",
        s =>
        {
            var f = new TcpFlow(false, 40110, 21, 0x1F10_0001, 0x2F10_0001);
            var first = new TcpFlow(false, 40010, 20, 0x3F10_0001, 0x4F10_0001);
            var second = new TcpFlow(false, 40011, 20, 0x3F11_0001, 0x4F11_0001);
            var pasv1 = new TcpFlow(false, 40012, 50012, 0x3F12_0001, 0x4F12_0001);
            var pasv2 = new TcpFlow(false, 40013, 50013, 0x3F13_0001, 0x4F13_0001);
            s.FtpLogin(f)
                .Send(f.Text(Client, PortCommand(LabAddresses.ClientV4, 40010)), EstOrig(Established))
                .Send(f.Text(Server, "200 PORT command successful\r\n"), EstReply(Established))
                .Send(f.Text(Client, PortCommand(LabAddresses.ClientV4, 40011)), EstOrig(Established))
                .Send(f.Text(Server, "200 PORT command successful\r\n"), EstReply(Established))
                .Send(first.Syn(Server), NewOrig(SynSent))
                .Send(second.Syn(Server), RelOrig(SynSent))
                .Send(f.Text(Client, "PASV\r\n"), EstOrig(Established))
                .Send(f.Text(Server, PasvReply(LabAddresses.ServerV4, 50012)), EstReply(Established))
                .Send(f.Text(Client, "PASV\r\n"), EstOrig(Established))
                .Send(f.Text(Server, PasvReply(LabAddresses.ServerV4, 50013)), EstReply(Established))
                .Send(pasv1.Syn(Client), NewOrig(SynSent))
                .Send(pasv2.Syn(Client), RelOrig(SynSent));
        });

    private static KernelScenario FtpWrongSource() => Scenario("ftp_wrong_source",
        "The expectation of a 227 names the client's address as the data connection's source: a SYN to the announced " +
        "port from another address (10.99.1.77, spoofed from the client's side) is NEW; the client's own SYN then is " +
        "RELATED. After PORT, a SYN from the client (not the server) to the announced port is NEW as well.",
        s =>
        {
            var f = new TcpFlow(false, 40114, 21, 0x1F14_0001, 0x2F14_0001);
            var stranger = new TcpFlow(false, 40014, 50014, 0x3F14_0001, 0x4F14_0001);
            var d = new TcpFlow(false, 40015, 50014, 0x3F15_0001, 0x4F15_0001);
            var reversed = new TcpFlow(false, 40017, 40016, 0x3F16_0001, 0x4F16_0001);
            var d2 = new TcpFlow(false, 40016, 20, 0x3F17_0001, 0x4F17_0001);
            s.FtpLogin(f)
                .Send(f.Text(Client, "PASV\r\n"), EstOrig(Established))
                .Send(f.Text(Server, PasvReply(LabAddresses.ServerV4, 50014)), EstReply(Established))
                .Send(stranger.Syn(Client) with { SrcAddress = IpAddress.FromV4(0x0A63_014D) /* 10.99.1.77 */ }, NewOrig(SynSent))
                .Send(d.Syn(Client), RelOrig(SynSent))
                .Send(f.Text(Client, PortCommand(LabAddresses.ClientV4, 40016)), EstOrig(Established))
                .Send(f.Text(Server, "200 PORT command successful\r\n"), EstReply(Established))
                .Send(reversed.Syn(Client), NewOrig(SynSent))
                .Send(d2.Syn(Server), RelOrig(SynSent));
        });

    private static KernelScenario FtpWithoutHelper() => Scenario("ftp_without_helper",
        "The same active and passive sessions on port 2121, which the lab assigns no helper: PORT, 227 and 229 are " +
        "plain data, and every data connection's SYN is NEW. A split 'PO' is not dropped either.",
        s =>
        {
            var f = new TcpFlow(false, 40120, 2121, 0x1F20_0001, 0x2F20_0001);
            var active = new TcpFlow(false, 40020, 20, 0x3F20_0001, 0x4F20_0001);
            var passive = new TcpFlow(false, 40021, 50020, 0x3F21_0001, 0x4F21_0001);
            var epsv = new TcpFlow(false, 40022, 50021, 0x3F22_0001, 0x4F22_0001);
            s.FtpLogin(f)
                .Send(f.Text(Client, PortCommand(LabAddresses.ClientV4, 40020)), EstOrig(Established))
                .Send(f.Text(Server, "200 PORT command successful\r\n"), EstReply(Established))
                .Send(active.Syn(Server), NewOrig(SynSent))
                .Send(active.SynAck(Client), EstReply(SynRecv))
                .Send(f.Text(Client, "PASV\r\n"), EstOrig(Established))
                .Send(f.Text(Server, PasvReply(LabAddresses.ServerV4, 50020)), EstReply(Established))
                .Send(passive.Syn(Client), NewOrig(SynSent))
                .Send(f.Text(Client, "EPSV\r\n"), EstOrig(Established))
                .Send(f.Text(Server, EpsvReply(50021)), EstReply(Established))
                .Send(epsv.Syn(Client), NewOrig(SynSent))
                .Send(f.Text(Client, "PO"), EstOrig(Established));
        });

    /// <summary>A TFTP packet: opcode, then the rest as text (RFC 1350).</summary>
    private static UdpPacket Tftp(Side from, bool v6, ushort sport, ushort dport, ushort opcode, string rest)
    {
        string text = $"{(char)(opcode >> 8)}{(char)(opcode & 0xFF)}{rest}";
        return new UdpPacket(from, v6, sport, dport, text.Length) { Text = text };
    }

    private static UdpPacket Rrq(Side from, bool v6, ushort sport, ushort dport, string file) => Tftp(from, v6, sport, dport, 1, $"{file}\0octet\0");

    private static UdpPacket Wrq(Side from, bool v6, ushort sport, ushort dport, string file) => Tftp(from, v6, sport, dport, 2, $"{file}\0octet\0");

    private static UdpPacket TftpData(Side from, bool v6, ushort sport, ushort dport, ushort block, int length) =>
        Tftp(from, v6, sport, dport, 3, $"{(char)(block >> 8)}{(char)(block & 0xFF)}{new string('d', length)}");

    private static UdpPacket TftpAck(Side from, bool v6, ushort sport, ushort dport, ushort block) =>
        Tftp(from, v6, sport, dport, 4, $"{(char)(block >> 8)}{(char)(block & 0xFF)}");

    private static KernelScenario TftpRrqWrq() => Scenario("tftp_rrq_wrq",
        "TFTP on port 69 with the helper: a read request expects the answer from the server's address, any port, to " +
        "the client's address and port; the server's DATA from its new port is RELATED (ORIGINAL of the new entry) " +
        "and the client's ACK back ESTABLISHED (REPLY). A write request the same, answered by ACK 0; over IPv6 too. " +
        "The request itself is NEW (the helper reads the first packet), the expectation is used up by the answer: a " +
        "second answer from yet another port is NEW.",
        s => s
            .Send(Rrq(Client, false, 40200, 69, "boot.img"), NewOrig())
            .Send(TftpData(Server, false, 50200, 40200, 1, 512), RelOrig())
            .Send(TftpAck(Client, false, 40200, 50200, 1), EstReply())
            .Send(TftpData(Server, false, 50200, 40200, 2, 100), EstOrig())
            .Send(TftpData(Server, false, 50299, 40200, 1, 512), NewOrig())
            .Send(Wrq(Client, false, 40201, 69, "upload.bin"), NewOrig())
            .Send(TftpAck(Server, false, 50201, 40201, 0), RelOrig())
            .Send(TftpData(Client, false, 40201, 50201, 1, 64), EstReply())
            .Send(Rrq(Client, true, 40202, 69, "boot6.img"), NewOrig())
            .Send(TftpData(Server, true, 50202, 40202, 1, 512), RelOrig())
            .Send(TftpAck(Client, true, 40202, 50202, 1), EstReply()));

    private static KernelScenario TftpWithoutExpectation() => Scenario("tftp_without_expectation",
        "No expectation: a read request to port 6969 (no helper assigned) and, on port 69, packets that are not " +
        "requests (DATA, ACK and ERROR opcodes, a 1-byte payload): in every case the server's answer from a new port " +
        "is NEW. A request that follows on such a connection (still unanswered: NEW) still expects, as the helper reads " +
        "every packet of its connection.",
        s => s
            .Send(Rrq(Client, false, 40210, 6969, "boot.img"), NewOrig())
            .Send(TftpData(Server, false, 50210, 40210, 1, 512), NewOrig())
            .Send(TftpData(Client, false, 40211, 69, 1, 64), NewOrig())
            .Send(TftpAck(Server, false, 50211, 40211, 1), NewOrig())
            .Send(TftpAck(Client, false, 40212, 69, 0), NewOrig())
            .Send(Tftp(Client, false, 40213, 69, 5, "\0\u0001no such file\0"), NewOrig())
            .Send(new UdpPacket(Client, false, 40214, 69, 1) { Text = "\u0001" }, NewOrig())
            .Send(TftpAck(Server, false, 50214, 40214, 0), NewOrig())
            .Send(Rrq(Client, false, 40211, 69, "late.img"), NewOrig())
            .Send(TftpData(Server, false, 50215, 40211, 1, 512), RelOrig()));
}
