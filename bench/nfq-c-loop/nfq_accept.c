/*
 * nfq_accept: the plain C NFQUEUE accept-all loop used as the yardstick "ceiling of any NFQUEUE
 * consumer" (docs/THROUGHPUT.md, perf.md §7.2 configuration C).
 *
 * Same queue set-up as ctfw's NfqueueSocket: BIND, COPY_PACKET with a copy range (default 0xffff,
 * ctfw's default "all"), QUEUE_MAXLEN 4096, NFQA_CFG_F_GSO (+ FAIL_OPEN unless -c), 8 MiB
 * SO_RCVBUFFORCE, NETLINK_NO_ENOBUFS, 200 ms SO_RCVTIMEO, recvmmsg of up to 64 datagrams into
 * slots of copy range + 4 KiB, then ONE NFQNL_MSG_VERDICT_BATCH (accept, id = last id of the batch).
 *
 * Usage: nfq_accept [-q QUEUE] [-r COPY_RANGE] [-b BATCH] [-m MAXLEN] [-c]
 *   -c   fail-closed (do not set NFQA_CFG_F_FAIL_OPEN)
 * SIGTERM/SIGINT: unbinds, prints "packets=N batches=M avg_batch=X bytes=B truncated=T recv_calls=R
 * send_calls=S" on stdout, exits 0. recv_calls counts every recvmmsg call (timeouts and EINTR
 * included), send_calls every verdict sendto: their sum per packet is the loop's syscalls/packet
 * (`ctfw bench`). SIGUSR1: prints the same line so far (the loop keeps running), so a harness can
 * take the difference of two snapshots around a measurement.
 *
 * Build: make   (gcc -O2 nfq_accept.c -lnetfilter_queue -lmnl)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <sys/socket.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nfnetlink_queue.h>
#include <libmnl/libmnl.h>
#include <libnetfilter_queue/libnetfilter_queue.h>

#ifndef NETLINK_NO_ENOBUFS
#define NETLINK_NO_ENOBUFS 5
#endif
#define MAX_BATCH 256

static volatile sig_atomic_t g_stop;
static volatile sig_atomic_t g_dump;
static void on_signal(int sig) { (void)sig; g_stop = 1; }
static void on_dump(int sig) { (void)sig; g_dump = 1; }

struct batch_state {
    uint32_t last_id;
    int have_id;
    uint64_t packets;
    uint64_t bytes;
};

static int on_packet(const struct nlmsghdr *nlh, void *data)
{
    struct batch_state *st = data;
    struct nlattr *attr[NFQA_MAX + 1] = {0};
    if (nfq_nlmsg_parse(nlh, attr) < 0)
        return MNL_CB_ERROR;
    if (!attr[NFQA_PACKET_HDR])
        return MNL_CB_OK;
    struct nfqnl_msg_packet_hdr *ph = mnl_attr_get_payload(attr[NFQA_PACKET_HDR]);
    st->last_id = ntohl(ph->packet_id);
    st->have_id = 1;
    st->packets++;
    if (attr[NFQA_CAP_LEN])
        st->bytes += ntohl(mnl_attr_get_u32(attr[NFQA_CAP_LEN]));
    else if (attr[NFQA_PAYLOAD])
        st->bytes += mnl_attr_get_payload_len(attr[NFQA_PAYLOAD]);
    return MNL_CB_OK;
}

static void send_or_die(struct mnl_socket *nl, struct nlmsghdr *nlh, const char *what)
{
    if (mnl_socket_sendto(nl, nlh, nlh->nlmsg_len) < 0) {
        fprintf(stderr, "nfq_accept: %s: %s\n", what, strerror(errno));
        exit(1);
    }
}

/* Config request with ACK, waiting for the kernel's answer. */
static void config(struct mnl_socket *nl, struct nlmsghdr *nlh, const char *what)
{
    char buf[MNL_SOCKET_BUFFER_SIZE];
    nlh->nlmsg_flags |= NLM_F_ACK;
    nlh->nlmsg_seq = (uint32_t)time(NULL);
    send_or_die(nl, nlh, what);
    ssize_t n = mnl_socket_recvfrom(nl, buf, sizeof buf);
    if (n < 0 || mnl_cb_run(buf, n, nlh->nlmsg_seq, mnl_socket_get_portid(nl), NULL, NULL) < 0) {
        fprintf(stderr, "nfq_accept: %s: %s\n", what, strerror(errno));
        exit(1);
    }
}

static void print_counters(const struct batch_state *st, uint64_t batches, uint64_t truncated,
                           uint64_t recv_calls, uint64_t send_calls)
{
    printf("packets=%llu batches=%llu avg_batch=%.2f bytes=%llu truncated=%llu recv_calls=%llu send_calls=%llu\n",
           (unsigned long long)st->packets, (unsigned long long)batches,
           batches ? (double)st->packets / batches : 0.0, (unsigned long long)st->bytes,
           (unsigned long long)truncated, (unsigned long long)recv_calls, (unsigned long long)send_calls);
    fflush(stdout);
}

int main(int argc, char **argv)
{
    unsigned queue = 0, copy = 0xffff, batch = 64, maxlen = 4096;
    int fail_open = 1, opt;
    while ((opt = getopt(argc, argv, "q:r:b:m:c")) != -1) {
        switch (opt) {
        case 'q': queue = strtoul(optarg, NULL, 0); break;
        case 'r': copy = strtoul(optarg, NULL, 0); break;
        case 'b': batch = strtoul(optarg, NULL, 0); break;
        case 'm': maxlen = strtoul(optarg, NULL, 0); break;
        case 'c': fail_open = 0; break;
        default:
            fprintf(stderr, "usage: %s [-q QUEUE] [-r COPY_RANGE] [-b BATCH] [-m MAXLEN] [-c]\n", argv[0]);
            return 2;
        }
    }
    if (batch < 1 || batch > MAX_BATCH) batch = 64;
    if (copy > 0xffff - 4) copy = 0xffff - 4; /* kernel max: 0xffff - NLA_HDRLEN */

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal; /* no SA_RESTART: recvmmsg returns EINTR */
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sa.sa_handler = on_dump; /* no SA_RESTART either: recvmmsg returns EINTR and the loop prints */
    sigaction(SIGUSR1, &sa, NULL);

    struct mnl_socket *nl = mnl_socket_open(NETLINK_NETFILTER);
    if (!nl || mnl_socket_bind(nl, 0, MNL_SOCKET_AUTOPID) < 0) {
        perror("nfq_accept: netlink socket");
        return 1;
    }
    int fd = mnl_socket_get_fd(nl);
    int rcvbuf = 8 << 20, one = 1;
    if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof rcvbuf) < 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    setsockopt(fd, SOL_NETLINK, NETLINK_NO_ENOBUFS, &one, sizeof one);
    struct timeval tv = { .tv_sec = 0, .tv_usec = 200000 };
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);

    char cbuf[MNL_SOCKET_BUFFER_SIZE];
    struct nlmsghdr *nlh;
    nlh = nfq_nlmsg_put(cbuf, NFQNL_MSG_CONFIG, queue);
    nfq_nlmsg_cfg_put_cmd(nlh, AF_INET, NFQNL_CFG_CMD_BIND);
    config(nl, nlh, "bind");
    nlh = nfq_nlmsg_put(cbuf, NFQNL_MSG_CONFIG, queue);
    nfq_nlmsg_cfg_put_params(nlh, NFQNL_COPY_PACKET, (int)copy);
    config(nl, nlh, "copy mode");
    nlh = nfq_nlmsg_put(cbuf, NFQNL_MSG_CONFIG, queue);
    mnl_attr_put_u32(nlh, NFQA_CFG_QUEUE_MAXLEN, htonl(maxlen));
    config(nl, nlh, "queue maxlen");
    nlh = nfq_nlmsg_put(cbuf, NFQNL_MSG_CONFIG, queue);
    uint32_t flags = NFQA_CFG_F_GSO | (fail_open ? NFQA_CFG_F_FAIL_OPEN : 0);
    uint32_t mask = NFQA_CFG_F_GSO | NFQA_CFG_F_FAIL_OPEN;
    mnl_attr_put_u32(nlh, NFQA_CFG_FLAGS, htonl(flags));
    mnl_attr_put_u32(nlh, NFQA_CFG_MASK, htonl(mask));
    config(nl, nlh, "flags");

    /* Receive slots: copy range + 4 KiB of attribute headroom, like ctfw's SlotSize. */
    size_t slot = ((size_t)copy + 4096 + 63) & ~(size_t)63;
    char *rx = aligned_alloc(4096, (slot * batch + 4095) & ~(size_t)4095);
    struct mmsghdr msgs[MAX_BATCH];
    struct iovec iov[MAX_BATCH];
    if (!rx) { perror("nfq_accept: alloc"); return 1; }

    fprintf(stderr, "nfq_accept: queue %u copy %u batch %u maxlen %u gso on%s\n",
            queue, copy, batch, maxlen, fail_open ? " fail-open" : "");

    struct batch_state st = {0};
    uint64_t batches = 0, truncated = 0, recv_calls = 0, send_calls = 0;
    char vbuf[256];
    unsigned portid = mnl_socket_get_portid(nl);
    while (!g_stop) {
        memset(msgs, 0, batch * sizeof msgs[0]);
        for (unsigned i = 0; i < batch; i++) {
            iov[i].iov_base = rx + i * slot;
            iov[i].iov_len = slot;
            msgs[i].msg_hdr.msg_iov = &iov[i];
            msgs[i].msg_hdr.msg_iovlen = 1;
        }
        if (g_dump) {
            g_dump = 0;
            print_counters(&st, batches, truncated, recv_calls, send_calls);
        }
        int n = recvmmsg(fd, msgs, batch, MSG_WAITFORONE, NULL);
        recv_calls++;
        if (n < 0) {
            if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS)
                continue;
            perror("nfq_accept: recvmmsg");
            break;
        }
        st.have_id = 0;
        for (int i = 0; i < n; i++) {
            if (msgs[i].msg_hdr.msg_flags & MSG_TRUNC) truncated++;
            mnl_cb_run(rx + i * slot, msgs[i].msg_len, 0, portid, on_packet, &st);
        }
        if (st.have_id) {
            nlh = nfq_nlmsg_put(vbuf, NFQNL_MSG_VERDICT_BATCH, queue);
            nfq_nlmsg_verdict_put(nlh, st.last_id, NF_ACCEPT);
            send_calls++;
            if (mnl_socket_sendto(nl, nlh, nlh->nlmsg_len) < 0 && errno != EINTR)
                perror("nfq_accept: verdict");
            batches++;
        }
    }

    nlh = nfq_nlmsg_put(cbuf, NFQNL_MSG_CONFIG, queue);
    nfq_nlmsg_cfg_put_cmd(nlh, AF_INET, NFQNL_CFG_CMD_UNBIND);
    mnl_socket_sendto(nl, nlh, nlh->nlmsg_len);
    mnl_socket_close(nl);
    print_counters(&st, batches, truncated, recv_calls, send_calls);
    free(rx);
    return 0;
}
