/*
 * ctfw-flood: the packet source of the hostile-load suite (issue 13 part 7). Sends a TCP SYN flood
 * or a small-UDP overload, IPv4 or IPv6, from a fixed source or a random source per packet inside a
 * prefix, at a paced or maximal rate, and prints what it sent:
 *
 *   sent=N errors=M seconds=S.sss
 *
 * A flood is only worth something if every packet is one the firewall must really classify: a bad
 * checksum would make it INVALID at the first look and never reach the connection table. So each
 * packet is valid (IPv4 header checksum, TCP/UDP checksum over the pseudo-header) after its source
 * address, source port, ISN and IP id are rewritten.
 *
 * Speed comes from the usual three: packets built once and only their varying fields rewritten, the
 * checksums completed from a precomputed sum of the fixed fields rather than recomputed, and one
 * sendmmsg per batch. Raw sockets with the IP header included (IPPROTO_RAW; on Linux an AF_INET6
 * IPPROTO_RAW socket takes the whole IPv6 header too) let us choose any source address.
 *
 * Exit status: 0 done, 1 the socket could not be made or the kernel rejects the packets themselves
 * (a configuration error that would fail every send), 2 bad arguments.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum { KIND_SYN, KIND_UDP };

enum
{
    IPV4_HEADER = 20,
    IPV6_HEADER = 40,
    UDP_HEADER = 8,
    /* A SYN carries an MSS option like every real stack's, so it looks like one to a tracker. */
    TCP_SYN_HEADER = 24,
    MAX_BATCH = 1024,
    MAX_PACKET = 65535,
    /* Payload that makes the whole IP packet 64 bytes: the classic small-packet overload. */
    DEFAULT_UDP_PACKET = 64,
};

struct options
{
    int kind;
    int family;
    struct in6_addr dst; /* IPv4 addresses live in the first 4 bytes */
    int dport;
    struct in6_addr src;
    int src_prefix;     /* bits of src that are fixed; 32/128 for --src */
    bool have_src;
    long payload;       /* -1: the default */
    double rate;        /* packets per second, 0 = unpaced */
    double duration;    /* seconds, 0 = until a signal */
    double burst_on;    /* --burst ON/PERIOD, seconds: flat out for ON of every PERIOD; 0 = steady */
    double burst_period;
    bool have_mark;
    uint32_t mark;
    int batch;
};

static volatile sig_atomic_t s_stop;

static void on_signal(int signo)
{
    (void)signo;
    s_stop = 1;
}

static _Noreturn void usage_error(const char *fmt, const char *arg)
{
    fprintf(stderr, "ctfw-flood: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr,
            "\nusage: ctfw-flood --kind syn|udp [--family 4|6] --dst ADDR --dport N (--src ADDR | --src-net CIDR)\n"
            "                  [--size BYTES] [--rate PPS | --burst ON_MS/PERIOD_MS] [--duration SECONDS] [--mark N]\n"
            "                  [--batch N]\n");
    exit(2);
}

/* ---- argument parsing --------------------------------------------------------------------- */

static long parse_long(const char *name, const char *text, long min, long max)
{
    char *end;
    errno = 0;
    long v = strtol(text, &end, 0);
    if (errno != 0 || end == text || *end != '\0' || v < min || v > max)
    {
        char message[128];
        snprintf(message, sizeof message, "%s wants an integer from %ld to %ld, not '%%s'", name, min, max);
        usage_error(message, text);
    }
    return v;
}

static double parse_double(const char *name, const char *text, double max)
{
    char *end;
    errno = 0;
    double v = strtod(text, &end);
    if (errno != 0 || end == text || *end != '\0' || !(v >= 0 && v <= max))
    {
        char message[128];
        snprintf(message, sizeof message, "%s wants a number from 0 to %.0f, not '%%s'", name, max);
        usage_error(message, text);
    }
    return v;
}

/* Parses an IPv4 or IPv6 address; returns its family, or 0 when it is neither. */
static int parse_address(const char *text, struct in6_addr *out)
{
    memset(out, 0, sizeof *out);
    if (inet_pton(AF_INET, text, out) == 1)
        return 4;
    if (inet_pton(AF_INET6, text, out) == 1)
        return 6;
    return 0;
}

/* "ADDR/BITS": the prefix's family; its host bits are cleared so a sloppy 10.99.1.2/16 means 10.99.0.0/16. */
static int parse_cidr(const char *text, struct in6_addr *addr, int *bits)
{
    char copy[INET6_ADDRSTRLEN + 8];
    const char *slash = strchr(text, '/');
    if (slash == NULL || (size_t)(slash - text) >= INET6_ADDRSTRLEN)
        usage_error("--src-net wants ADDR/BITS (10.99.0.0/16, fd99::/64), not '%s'", text);
    memcpy(copy, text, (size_t)(slash - text));
    copy[slash - text] = '\0';
    int family = parse_address(copy, addr);
    if (family == 0)
        usage_error("--src-net: '%s' is not an IPv4 or IPv6 prefix", text);
    char *end;
    errno = 0;
    long b = strtol(slash + 1, &end, 10);
    if (errno != 0 || end == slash + 1 || *end != '\0' || b < 0 || b > (family == 4 ? 32 : 128))
        usage_error("--src-net: bad prefix length in '%s'", text);
    *bits = (int)b;
    for (int i = *bits; i < (family == 4 ? 32 : 128); i++)
        addr->s6_addr[i / 8] &= (uint8_t)~(0x80u >> (i % 8));
    return family;
}

static void parse_options(int argc, char **argv, struct options *o)
{
    static const struct option longs[] = {
        { "kind", required_argument, NULL, 'k' },     { "family", required_argument, NULL, 'f' },
        { "dst", required_argument, NULL, 'd' },      { "dport", required_argument, NULL, 'p' },
        { "src", required_argument, NULL, 's' },      { "src-net", required_argument, NULL, 'n' },
        { "size", required_argument, NULL, 'z' },     { "rate", required_argument, NULL, 'r' },
        { "duration", required_argument, NULL, 't' }, { "mark", required_argument, NULL, 'm' },
        { "batch", required_argument, NULL, 'b' },    { "burst", required_argument, NULL, 'B' },
        { "help", no_argument, NULL, 'h' },
        { 0, 0, 0, 0 },
    };
    *o = (struct options){ .kind = -1, .payload = -1, .batch = 64 };
    int dst_family = 0, src_family = 0, given_family = 0;
    int c;
    opterr = 0; /* our own messages, with the usage line */
    while ((c = getopt_long(argc, argv, "", longs, NULL)) != -1)
    {
        switch (c)
        {
        case 'k':
            if (strcmp(optarg, "syn") == 0)
                o->kind = KIND_SYN;
            else if (strcmp(optarg, "udp") == 0)
                o->kind = KIND_UDP;
            else
                usage_error("--kind wants syn or udp, not '%s'", optarg);
            break;
        case 'f':
            if (strcmp(optarg, "4") != 0 && strcmp(optarg, "6") != 0)
                usage_error("--family wants 4 or 6, not '%s'", optarg);
            given_family = optarg[0] - '0';
            break;
        case 'd':
            dst_family = parse_address(optarg, &o->dst);
            if (dst_family == 0)
                usage_error("--dst: '%s' is not an IPv4 or IPv6 address", optarg);
            break;
        case 'p':
            o->dport = (int)parse_long("--dport", optarg, 1, 65535);
            break;
        case 's':
            if (o->have_src)
                usage_error("give one of --src and --src-net%s", "");
            src_family = parse_address(optarg, &o->src);
            if (src_family == 0)
                usage_error("--src: '%s' is not an IPv4 or IPv6 address", optarg);
            o->src_prefix = src_family == 4 ? 32 : 128;
            o->have_src = true;
            break;
        case 'n':
            if (o->have_src)
                usage_error("give one of --src and --src-net%s", "");
            src_family = parse_cidr(optarg, &o->src, &o->src_prefix);
            o->have_src = true;
            break;
        case 'z':
            o->payload = parse_long("--size", optarg, 0, MAX_PACKET - IPV4_HEADER - UDP_HEADER);
            break;
        case 'r':
            o->rate = parse_double("--rate", optarg, 1e9);
            break;
        case 't':
            o->duration = parse_double("--duration", optarg, 1e7);
            break;
        case 'm':
            o->mark = (uint32_t)parse_long("--mark", optarg, 0, UINT32_MAX);
            o->have_mark = true;
            break;
        case 'b':
            o->batch = (int)parse_long("--batch", optarg, 1, MAX_BATCH);
            break;
        case 'B':
        {
            /* ON_MS/PERIOD_MS: bursts at the full rate the machine allows, with pauses between. */
            long on = 0, period = 0;
            int consumed = 0;
            if (sscanf(optarg, "%ld/%ld%n", &on, &period, &consumed) != 2 || optarg[consumed] != '\0'
                || on < 1 || period <= on || period > 3600000)
                usage_error("--burst wants ON_MS/PERIOD_MS with 1 <= ON_MS < PERIOD_MS <= 3600000, not '%s'", optarg);
            o->burst_on = (double)on / 1000;
            o->burst_period = (double)period / 1000;
            break;
        }
        case 'h':
            usage_error("%s", "a flood generator for ctfw's hostile-load tests");
        default:
            usage_error("unknown or incomplete option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc)
        usage_error("unexpected argument '%s'", argv[optind]);
    if (o->kind < 0)
        usage_error("--kind is required%s", "");
    if (dst_family == 0)
        usage_error("--dst is required%s", "");
    if (o->dport == 0)
        usage_error("--dport is required%s", "");
    if (!o->have_src)
        usage_error("--src or --src-net is required%s", "");
    if (o->burst_period > 0 && o->rate > 0)
        usage_error("give one of --rate and --burst%s", "");
    if (given_family != 0 && given_family != dst_family)
        usage_error("--family %s does not match the --dst address", given_family == 4 ? "4" : "6");
    if (src_family != dst_family)
        usage_error("the source and --dst are of different families%s", "");
    o->family = dst_family;
    if (o->kind == KIND_SYN && o->payload >= 0)
        usage_error("--size is for --kind udp only%s", "");
    if (o->kind == KIND_UDP && o->payload < 0)
        o->payload = DEFAULT_UDP_PACKET - (o->family == 4 ? IPV4_HEADER : IPV6_HEADER) - UDP_HEADER;
    if (o->family == 6 && o->payload > MAX_PACKET - UDP_HEADER)
        usage_error("--size is too large for one IPv6 packet%s", "");
}

/* ---- packets ------------------------------------------------------------------------------ */

/* xorshift64* (Vigna, "An experiment with xorshift generators", 2014): fast, and random enough to
   spread sources over a prefix and ports over their range; nothing here needs to be unpredictable. */
static uint64_t s_rng;

static inline uint64_t next_random(void)
{
    s_rng ^= s_rng >> 12;
    s_rng ^= s_rng << 25;
    s_rng ^= s_rng >> 27;
    return s_rng * 0x2545F4914F6CDD1DULL;
}

/* RFC 1071 ones'-complement sum of big-endian 16-bit words, unfolded (a 64-bit accumulator cannot
   overflow for any packet we build). */
static uint64_t sum16(const uint8_t *p, size_t n)
{
    uint64_t s = 0;
    for (; n > 1; p += 2, n -= 2)
        s += (uint32_t)p[0] << 8 | p[1];
    if (n == 1)
        s += (uint32_t)p[0] << 8;
    return s;
}

static inline uint16_t fold(uint64_t s)
{
    while (s >> 16)
        s = (s & 0xffff) + (s >> 16);
    return (uint16_t)s;
}

static inline void put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static inline void put32(uint8_t *p, uint32_t v)
{
    put16(p, (uint16_t)(v >> 16));
    put16(p + 2, (uint16_t)v);
}

/*
 * The template every packet starts from. The fields that vary per packet (source address, source
 * port, ISN, IPv4 id) are zero in it, and both checksum fields too, so l3_base and l4_base are the
 * sums of everything fixed: a packet's checksum is that sum plus its varying words, complemented.
 */
struct packet_template
{
    uint8_t bytes[MAX_PACKET];
    size_t length;
    size_t l4;           /* offset of the TCP/UDP header */
    size_t src;          /* offset of the source address */
    size_t src_length;   /* 4 or 16 */
    uint64_t l3_base;    /* IPv4 header sum (IPv6 has no header checksum) */
    uint64_t l4_base;    /* pseudo-header + TCP/UDP header + payload */
};

static void build_template(const struct options *o, struct packet_template *t)
{
    uint8_t *p = t->bytes;
    size_t l4_length = o->kind == KIND_SYN ? TCP_SYN_HEADER : UDP_HEADER + (size_t)o->payload;
    uint8_t protocol = o->kind == KIND_SYN ? IPPROTO_TCP : IPPROTO_UDP;
    memset(t, 0, sizeof *t);

    if (o->family == 4)
    {
        /* RFC 791:
            0                   1                   2                   3
            0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
           |Version|  IHL  |Type of Service|          Total Length         |
           |         Identification        |Flags|      Fragment Offset    |
           |  Time to Live |    Protocol   |         Header Checksum       |
           |                       Source Address                          |
           |                    Destination Address                        |  */
        t->l4 = IPV4_HEADER;
        t->length = IPV4_HEADER + l4_length;
        t->src = 12;
        t->src_length = 4;
        p[0] = 0x45;
        put16(p + 2, (uint16_t)t->length);
        p[6] = 0x40; /* DF, as stacks with path MTU discovery send */
        p[8] = 64;
        p[9] = protocol;
        memcpy(p + 16, &o->dst, 4);
        t->l3_base = sum16(p, IPV4_HEADER);
    }
    else
    {
        /* RFC 8200:
           |Version| Traffic Class |           Flow Label                  |
           |         Payload Length        |  Next Header  |   Hop Limit   |
           |                    Source Address (128 bits)                  |
           |                 Destination Address (128 bits)                |  */
        t->l4 = IPV6_HEADER;
        t->length = IPV6_HEADER + l4_length;
        t->src = 8;
        t->src_length = 16;
        p[0] = 0x60;
        put16(p + 4, (uint16_t)l4_length);
        p[6] = protocol;
        p[7] = 64;
        memcpy(p + 24, &o->dst, 16);
    }

    uint8_t *l4 = p + t->l4;
    put16(l4 + 2, (uint16_t)o->dport);
    if (o->kind == KIND_SYN)
    {
        /* RFC 9293: ports, sequence number, acknowledgment number, data offset 6 words, SYN, window;
           then the option MSS 1460 (kind 2, length 4). */
        l4[12] = 6 << 4;
        l4[13] = 0x02;
        put16(l4 + 14, 64240);
        l4[20] = 2;
        l4[21] = 4;
        put16(l4 + 22, 1460);
    }
    else
    {
        /* RFC 768: ports, length, checksum; the payload is a recognisable pattern. */
        put16(l4 + 4, (uint16_t)l4_length);
        for (size_t i = 0; i < (size_t)o->payload; i++)
            l4[UDP_HEADER + i] = (uint8_t)('a' + i % 26);
    }
    /* The pseudo-header (RFC 9293 3.1, RFC 768, RFC 8200 8.1): source (added per packet),
       destination, protocol and L4 length; its field layout does not change the ones'-complement sum. */
    t->l4_base = sum16((const uint8_t *)&o->dst, t->src_length) + protocol + l4_length + sum16(l4, l4_length);
}

/* A source inside the prefix: the fixed bits from --src/--src-net, the others random. */
static void random_source(const struct options *o, uint8_t *addr, size_t length)
{
    uint64_t r[2] = { next_random(), next_random() };
    uint8_t random_bytes[16];
    memcpy(random_bytes, r, sizeof random_bytes);
    for (size_t i = 0; i < length; i++)
    {
        int fixed = o->src_prefix - (int)i * 8;
        uint8_t keep = fixed >= 8 ? 0xff : fixed <= 0 ? 0 : (uint8_t)(0xff00u >> fixed);
        addr[i] = (uint8_t)((o->src.s6_addr[i] & keep) | (random_bytes[i] & ~keep));
    }
}

/* Turns a copy of the template into the next packet of the flood. */
static void fill_packet(const struct options *o, const struct packet_template *t, uint8_t *p)
{
    uint8_t *l4 = p + t->l4;
    uint8_t *src = p + t->src;
    random_source(o, src, t->src_length);
    uint64_t r = next_random();
    uint16_t sport = (uint16_t)(1024 + (r & 0xffff) % (65536 - 1024));
    put16(l4, sport);
    uint64_t l4_sum = t->l4_base + sum16(src, t->src_length) + sport;
    if (o->kind == KIND_SYN)
    {
        uint32_t isn = (uint32_t)(r >> 32);
        put32(l4 + 4, isn);
        l4_sum += (isn >> 16) + (isn & 0xffff);
        put16(l4 + 16, (uint16_t)~fold(l4_sum));
    }
    else
    {
        uint16_t check = (uint16_t)~fold(l4_sum);
        put16(l4 + 6, check == 0 ? 0xffff : check); /* 0 would mean "no checksum" (RFC 768) */
    }
    if (o->family == 4)
    {
        /* The kernel would fill a zero id and the header checksum for us, but the packet should be
           valid as built (and as a capture on the sender would show it). */
        uint16_t id = (uint16_t)(r >> 16);
        put16(p + 4, id);
        put16(p + 10, (uint16_t)~fold(t->l3_base + sum16(src, 4) + id));
    }
}

/* ---- sending ------------------------------------------------------------------------------ */

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Sleeps until `at` seconds after `first` (CLOCK_MONOTONIC, absolute: no drift); a signal that
   stops the flood ends the sleep. */
static void sleep_until(const struct timespec *first, double at)
{
    struct timespec when = { .tv_sec = first->tv_sec + (time_t)at,
                             .tv_nsec = first->tv_nsec + (long)((at - (double)(time_t)at) * 1e9) };
    if (when.tv_nsec >= 1000000000L)
    {
        when.tv_sec++;
        when.tv_nsec -= 1000000000L;
    }
    while (!s_stop && clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &when, NULL) == EINTR)
    {
    }
}

/* Errors that would fail every packet alike: the flood is misconfigured, not overloaded. */
static bool is_fatal(int error)
{
    return error == EINVAL || error == EMSGSIZE || error == EAFNOSUPPORT || error == EBADF || error == ENOTSOCK
        || error == EFAULT || error == EDESTADDRREQ || error == EOPNOTSUPP;
}

static void print_result(uint64_t sent, uint64_t errors, double seconds)
{
    printf("sent=%" PRIu64 " errors=%" PRIu64 " seconds=%.3f\n", sent, errors, seconds);
    fflush(stdout);
}

int main(int argc, char **argv)
{
    struct options o;
    parse_options(argc, argv, &o);

    int fd = socket(o.family == 4 ? AF_INET : AF_INET6, SOCK_RAW, IPPROTO_RAW);
    if (fd < 0)
    {
        fprintf(stderr, "ctfw-flood: cannot open a raw IPv%d socket: %s (needs CAP_NET_RAW)\n", o.family, strerror(errno));
        return 1;
    }
    if (o.have_mark && setsockopt(fd, SOL_SOCKET, SO_MARK, &o.mark, sizeof o.mark) != 0)
    {
        fprintf(stderr, "ctfw-flood: cannot set SO_MARK %" PRIu32 ": %s\n", o.mark, strerror(errno));
        return 1;
    }

    struct sigaction sa = { .sa_handler = on_signal };
    sigemptyset(&sa.sa_mask);
    /* No SA_RESTART: a signal must end a clock_nanosleep or a blocked sendmmsg at once. */
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    struct timespec seed;
    clock_gettime(CLOCK_REALTIME, &seed);
    s_rng = ((uint64_t)seed.tv_sec * 1000000007u) ^ (uint64_t)seed.tv_nsec ^ ((uint64_t)getpid() << 32);
    if (s_rng == 0)
        s_rng = 0x9E3779B97F4A7C15ULL; /* xorshift's one fixed point */

    static struct packet_template t;
    build_template(&o, &t);

    /* The destination the kernel routes by; with the header included, the port must stay 0. */
    struct sockaddr_storage to = { 0 };
    socklen_t to_length;
    if (o.family == 4)
    {
        struct sockaddr_in *sin = (struct sockaddr_in *)&to;
        sin->sin_family = AF_INET;
        memcpy(&sin->sin_addr, &o.dst, 4);
        to_length = sizeof *sin;
    }
    else
    {
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&to;
        sin6->sin6_family = AF_INET6;
        sin6->sin6_addr = o.dst;
        to_length = sizeof *sin6;
    }

    /* Pacing: one batch per tick. Batches shrink at low rates so a tick is at least ~1 ms apart
       but the packets of a second are not sent in a handful of bursts. */
    int batch = o.batch;
    if (o.rate > 0 && o.rate / 1000 < batch)
        batch = o.rate < 1000 ? 1 : (int)(o.rate / 1000);
    uint8_t *buffers = malloc((size_t)batch * t.length);
    struct mmsghdr *messages = calloc((size_t)batch, sizeof *messages);
    struct iovec *iov = calloc((size_t)batch, sizeof *iov);
    if (buffers == NULL || messages == NULL || iov == NULL)
    {
        fprintf(stderr, "ctfw-flood: out of memory\n");
        return 1;
    }
    for (int i = 0; i < batch; i++)
    {
        memcpy(buffers + (size_t)i * t.length, t.bytes, t.length);
        iov[i] = (struct iovec){ .iov_base = buffers + (size_t)i * t.length, .iov_len = t.length };
        messages[i].msg_hdr = (struct msghdr){ .msg_name = &to, .msg_namelen = to_length, .msg_iov = &iov[i], .msg_iovlen = 1 };
    }

    uint64_t sent = 0, errors = 0;
    int status = 0;
    struct timespec first;
    clock_gettime(CLOCK_MONOTONIC, &first);
    double start = (double)first.tv_sec + (double)first.tv_nsec / 1e9;
    double end = o.duration > 0 ? start + o.duration : 1e300; /* no end: until a signal */
    double tick = o.rate > 0 ? batch / o.rate : 0;
    uint64_t batches = 0;

    while (!s_stop && now_seconds() < end)
    {
        if (o.burst_period > 0)
        {
            /* Between bursts: sleep to the start of the next period (absolute, so no drift). */
            double elapsed = now_seconds() - start;
            double phase = elapsed - (double)(long long)(elapsed / o.burst_period) * o.burst_period; /* no libm */
            if (phase >= o.burst_on)
            {
                double at = elapsed - phase + o.burst_period;
                if (start + at >= end)
                    break;
                sleep_until(&first, at);
                continue;
            }
        }
        for (int i = 0; i < batch; i++)
            fill_packet(&o, &t, buffers + (size_t)i * t.length);
        /* sendmmsg stops at the first failing message: count it, step over it, send the rest. A full
           queue (ENOBUFS, EAGAIN) thus costs one packet per call, never an endless retry. */
        int done = 0;
        while (done < batch && !s_stop)
        {
            int n = sendmmsg(fd, messages + done, (unsigned)(batch - done), 0);
            if (n > 0)
            {
                sent += (uint64_t)n;
                done += n;
                continue;
            }
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0 && is_fatal(errno))
            {
                fprintf(stderr, "ctfw-flood: the kernel rejects the packets: %s\n", strerror(errno));
                status = 1;
                s_stop = 1;
                break;
            }
            errors++;
            done++;
        }
        if (tick > 0)
        {
            /* Absolute deadlines from the start: the time spent building and sending does not add
               up as drift. A deadline past the end ends the run instead of oversleeping it. */
            double at = (double)++batches * tick;
            if (start + at >= end)
                break;
            sleep_until(&first, at);
        }
    }
    print_result(sent, errors, now_seconds() - start);
    close(fd);
    return status;
}
