/* netsvc-sockclean: the restart hook of netsvc.resilience (x86_64 and aarch64 build).
 *
 *   netsvc-sockclean [--unit NAME] [--user UID:GID[:G,G...]] [--status-dir DIR]
 *                    PORT|LOW-HIGH... [-- COMMAND ARGS...]
 *
 * Before a service starts, destroys the sockets a dead server left on its LOCAL ports
 * (TIME_WAIT, FIN_WAIT_1, FIN_WAIT_2, CLOSING, LAST_ACK) over sock_diag netlink, so the
 * restart can bind. LISTEN and ESTABLISHED sockets are never touched. Counts again
 * afterwards, and when sockets are left it says why, from the errno the kernel gave for
 * each socket: no CAP_NET_ADMIN (EPERM), netlink refused (socket() failed), a kernel
 * without SOCK_DESTROY, or TIME_WAIT not destroyable before Linux 6.0 (EOPNOTSUPP).
 * Logs one line on stdout (the journal) and, with --unit, writes
 * /run/netsvc-resilience/hook/NAME.status for the audit. It never blocks a start: it
 * exits 0 (systemd runs it as ExecStartPre=+-...). With "-- COMMAND" it then drops to
 * --user (numeric ids, resolved by the module) and exec's COMMAND: the supervisord wrapper.
 *
 * The Python twin (plugins/module_utils/_sockdiag.py, run as a script) does the same on
 * other architectures; both print the same line and the same status file.
 * GNU GPL v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt).
 */
#include "nolibc.h"

#define AF_INET 2
#define AF_INET6 10
#define AF_NETLINK 16
#define SOCK_RAW 3
#define SOCK_CLOEXEC 02000000
#define NETLINK_SOCK_DIAG 4
#define SOL_SOCKET 1
#define SO_RCVBUF 8
#define SOL_NETLINK 270
#define NETLINK_CAP_ACK 10
#define IPPROTO_TCP 6

#define NLMSG_ERROR 2
#define NLMSG_DONE 3
#define NLM_F_REQUEST 0x1
#define NLM_F_ACK 0x4
#define NLM_F_DUMP 0x300
#define TCPDIAG_GETSOCK 18
#define SOCK_DIAG_BY_FAMILY 20
#define SOCK_DESTROY 21
#define INET_DIAG_REQ_BYTECODE 1
#define INET_DIAG_BC_S_GE 2
#define INET_DIAG_BC_S_LE 3

#define ST_FIN_WAIT1 4
#define ST_FIN_WAIT2 5
#define ST_TIME_WAIT 6
#define ST_LAST_ACK 9
#define ST_CLOSING 11
#define ORPHAN_MASK ((1u << ST_FIN_WAIT1) | (1u << ST_FIN_WAIT2) | (1u << ST_TIME_WAIT) | \
		     (1u << ST_LAST_ACK) | (1u << ST_CLOSING))

#define MAX_PORTS 64
#define MAX_SOCKS 131072
#define BATCH 512
#define STATUS_DIR "/run/netsvc-resilience/hook"

struct nlh {
	u32 len;
	u16 type;
	u16 flags;
	u32 seq;
	u32 pid;
};

struct req {		/* inet_diag_req_v2 */
	u8 family, protocol, ext, pad;
	u32 states;
	u8 id[48];	/* inet_diag_sockid, kept raw: ports and addresses in network order */
};

struct sock {
	u8 family, state;
	u8 id[48];
};

static struct sock socks[MAX_SOCKS];
static struct sock after[MAX_SOCKS];
static int errs[MAX_SOCKS];
#define HASH_SIZE (1 << 18)
static int hash_tab[HASH_SIZE];	/* index + 1 into after[], 0 = empty */
static u8 rbuf[65536];
static u8 sbuf[BATCH * (sizeof(struct nlh) + sizeof(struct req))];

static u16 ranges[MAX_PORTS][2];
static int nranges;
static u32 seqno;

static const char *const state_names[12] = {
	"?", "established", "syn-sent", "syn-recv", "fin-wait-1", "fin-wait-2",
	"time-wait", "close", "close-wait", "last-ack", "listen", "closing",
};

static u16 port_of(const u8 *id) { return (u16)(id[0] << 8 | id[1]); }

static int wanted(u16 port)
{
	for (int i = 0; i < nranges; i++)
		if (port >= ranges[i][0] && port <= ranges[i][1])
			return 1;
	return 0;
}

static const char *errname(int e)
{
	switch (e) {
	case EPERM: return "EPERM";
	case ENOENT: return "ENOENT";
	case EACCES: return "EACCES";
	case EINVAL: return "EINVAL";
	case EOPNOTSUPP: return "EOPNOTSUPP";
	case EAFNOSUPPORT: return "EAFNOSUPPORT";
	default: return 0;
	}
}

static void put_err(struct buf *o, int e)
{
	const char *n = errname(e);
	if (n)
		put(o, n);
	else {
		put(o, "errno ");
		putu(o, (unsigned long)e);
	}
}

/* One dump request and its replies: the inet_diag_req_v2 of one family (SOCK_DIAG_BY_FAMILY),
 * or the legacy inet_diag_req (TCPDIAG_GETSOCK), which the kernel answers for BOTH families
 * in one walk of its TCP hash table ("req.sdiag_family = AF_UNSPEC; compatibility" in
 * inet_diag_dump_compat). The walk visits every bucket, full or not - ~2 ms on a host whose
 * table has 262144 - so one walk instead of two halves the hook's cost when it finds nothing.
 * Appends to out[] from *n; returns 0 or -errno (a bytecode EINVAL is retried unfiltered). */
static long dump_one(int fd, int legacy, u8 family, u16 lo, u16 hi, struct sock *out, long *n)
{
	int filter = 1;
again:;
	struct {
		struct nlh h;
		u8 r[60];	/* inet_diag_req_v2 (56 bytes) or the legacy inet_diag_req (60) */
		u16 alen, atype;
		u8 bc[16];
	} m;
	u32 rlen = legacy ? 60 : sizeof(struct req);
	memset(&m, 0, sizeof(m));
	m.h.type = legacy ? TCPDIAG_GETSOCK : SOCK_DIAG_BY_FAMILY;
	m.h.flags = NLM_F_REQUEST | NLM_F_DUMP;
	m.h.seq = ++seqno;
	m.r[0] = family;
	if (legacy) {
		u32 states = ORPHAN_MASK;	/* after family, lengths, ext and the 48-byte id */
		memcpy(m.r + 52, &states, 4);
	} else {
		struct req *r = (struct req *)m.r;
		r->protocol = IPPROTO_TCP;
		r->states = ORPHAN_MASK;
	}
	m.h.len = sizeof(m.h) + rlen;
	if (filter) {
		/* S_GE lo (no: reject), S_LE hi (no: reject); exact ranges checked below */
		u8 bc[16] = {INET_DIAG_BC_S_GE, 8, 20, 0, 0, 0, (u8)lo, (u8)(lo >> 8),
			     INET_DIAG_BC_S_LE, 8, 12, 0, 0, 0, (u8)hi, (u8)(hi >> 8)};
		u8 *attr = (u8 *)&m.h + m.h.len;	/* right after the request */
		u16 alen = 4 + 16, atype = INET_DIAG_REQ_BYTECODE;
		memcpy(attr, &alen, 2);
		memcpy(attr + 2, &atype, 2);
		memcpy(attr + 4, bc, 16);
		m.h.len += 4 + 16;
	}
	if (sys6(SYS_sendto, fd, (long)&m, m.h.len, 0, 0, 0) < 0)
		return -EINVAL;
	for (;;) {
		long got = sys6(SYS_recvfrom, fd, (long)rbuf, sizeof(rbuf), 0, 0, 0);
		if (got <= 0)
			return got < 0 ? got : -EINVAL;
		for (long off = 0; off + (long)sizeof(struct nlh) <= got;) {
			struct nlh *h = (struct nlh *)(rbuf + off);
			if (h->len < sizeof(struct nlh) || off + h->len > (u32)got)
				break;
			if (h->seq == seqno) {
				if (h->type == NLMSG_DONE)
					return 0;
				if (h->type == NLMSG_ERROR) {
					int e = -*(int *)(rbuf + off + sizeof(struct nlh));
					if (e == EINVAL && filter) {
						filter = 0; /* bytecode refused: filter here only */
						goto again;
					}
					return e ? -e : 0;
				}
				if (h->type == m.h.type && h->len >= sizeof(struct nlh) + 72) {
					u8 *msg = rbuf + off + sizeof(struct nlh);
					if (((ORPHAN_MASK >> msg[1]) & 1) && wanted(port_of(msg + 4)) && *n < MAX_SOCKS) {
						out[*n].family = msg[0];
						out[*n].state = msg[1];
						memcpy(out[*n].id, msg + 4, 48);
						(*n)++;
					}
				}
			}
			off += (h->len + 3) & ~3u;
		}
	}
}

/* One dump of TCP sockets in ORPHAN_MASK on our ports, both families: the legacy request
 * (one table walk), else - a kernel that refuses it - one request per family. Returns the
 * count stored in out[] (at most MAX_SOCKS), or -errno. */
static int legacy_refused;

static long dump(int fd, struct sock *out)
{
	long n = 0, rc;
	u16 lo = 65535, hi = 0;
	for (int i = 0; i < nranges; i++) {
		if (ranges[i][0] < lo)
			lo = ranges[i][0];
		if (ranges[i][1] > hi)
			hi = ranges[i][1];
	}
	if (!legacy_refused) {
		rc = dump_one(fd, 1, AF_INET, lo, hi, out, &n);
		if (rc == 0)
			return n;
		legacy_refused = 1;
		n = 0;
	}
	if ((rc = dump_one(fd, 0, AF_INET, lo, hi, out, &n)) < 0)
		return rc;
	if ((rc = dump_one(fd, 0, AF_INET6, lo, hi, out, &n)) < 0)
		return rc;
	return n;
}

/* SOCK_DESTROY each socket; errs[i] = 0 or errno. */
static void destroy(int fd, long n)
{
	for (long start = 0; start < n; start += BATCH) {
		long cnt = n - start < BATCH ? n - start : BATCH;
		u32 first = seqno + 1;
		size_t len = 0;
		for (long i = 0; i < cnt; i++) {
			struct nlh *h = (struct nlh *)(sbuf + len);
			struct req *r = (struct req *)(sbuf + len + sizeof(*h));
			struct sock *s = &socks[start + i];
			h->len = sizeof(*h) + sizeof(*r);
			h->type = SOCK_DESTROY;
			h->flags = NLM_F_REQUEST | NLM_F_ACK;
			h->seq = ++seqno;
			h->pid = 0;
			r->family = s->family;
			r->protocol = IPPROTO_TCP;
			r->ext = r->pad = 0;
			r->states = 1u << s->state;
			memcpy(r->id, s->id, 48);
			errs[start + i] = -1;
			len += h->len;
		}
		if (sys6(SYS_sendto, fd, (long)sbuf, len, 0, 0, 0) < 0) {
			for (long i = 0; i < cnt; i++)
				errs[start + i] = EINVAL;
			continue;
		}
		for (long pending = cnt; pending > 0;) {
			long got = sys6(SYS_recvfrom, fd, (long)rbuf, sizeof(rbuf), 0, 0, 0);
			if (got <= 0)
				break;
			for (long off = 0; off + (long)sizeof(struct nlh) + 4 <= got;) {
				struct nlh *h = (struct nlh *)(rbuf + off);
				if (h->len < sizeof(struct nlh))
					break;
				if (h->type == NLMSG_ERROR && h->seq >= first && h->seq <= seqno) {
					long i = start + (h->seq - first);
					if (errs[i] < 0) {
						errs[i] = -*(int *)(rbuf + off + sizeof(struct nlh));
						pending--;
					}
				}
				off += (h->len + 3) & ~3u;
			}
		}
	}
}

/* The 4-tuple (ports and addresses: the first 36 bytes of the id) identifies a socket. */
static u32 tuple_hash(const u8 *id)
{
	u32 h = 2166136261u;
	for (int i = 0; i < 36; i++)
		h = (h ^ id[i]) * 16777619u;
	return h;
}

static int same_tuple(const u8 *a, const u8 *b)
{
	for (int i = 0; i < 36; i++)
		if (a[i] != b[i])
			return 0;
	return 1;
}

static void index_after(long n)
{
	memset(hash_tab, 0, sizeof(hash_tab));
	for (long i = 0; i < n; i++) {
		u32 h = tuple_hash(after[i].id) & (HASH_SIZE - 1);
		while (hash_tab[h])
			h = (h + 1) & (HASH_SIZE - 1);
		hash_tab[h] = (int)i + 1;
	}
}

static int still_there(const struct sock *s)
{
	u32 h = tuple_hash(s->id) & (HASH_SIZE - 1);
	while (hash_tab[h]) {
		if (same_tuple(after[hash_tab[h] - 1].id, s->id))
			return 1;
		h = (h + 1) & (HASH_SIZE - 1);
	}
	return 0;
}

static int parse_u(const char *s, unsigned long max, unsigned long *out)
{
	unsigned long v = 0;
	if (!*s)
		return 0;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return 0;
		v = v * 10 + (unsigned long)(*s - '0');
		if (v > max)
			return 0;
	}
	*out = v;
	return 1;
}

static int parse_range(const char *a)
{
	char lo[8], *p = lo;
	unsigned long l, h;
	const char *dash = a;
	while (*dash && *dash != '-')
		dash++;
	if (dash - a == 0 || dash - a > 5)
		return 0;
	for (const char *q = a; q < dash; q++)
		*p++ = *q;
	*p = 0;
	if (!parse_u(lo, 65535, &l) || l == 0)
		return 0;
	h = l;
	if (*dash && (!parse_u(dash + 1, 65535, &h) || h < l))
		return 0;
	if (nranges >= MAX_PORTS)
		return 0;
	ranges[nranges][0] = (u16)l;
	ranges[nranges][1] = (u16)h;
	nranges++;
	return 1;
}

static int unit_ok(const char *u)
{
	size_t n = slen(u);
	if (!n || n > 255 || u[0] == '.')
		return 0;
	for (; *u; u++) {
		char c = *u;
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == ':' || c == '_' || c == '.' || c == '\\' || c == '@' || c == '-'))
			return 0;
	}
	return 1;
}

/* "5.10.0-26-amd64" -> 510 */
static int kernel_version(char *release, size_t cap)
{
	static char uts[6 * 65];
	int major = 0, minor = 0;
	const char *p = uts + 2 * 65;
	if (sys1(SYS_uname, uts) < 0)
		return 0;
	size_t i = 0;
	for (; p[i] && i < cap - 1; i++)
		release[i] = p[i];
	release[i] = 0;
	while (*p >= '0' && *p <= '9')
		major = major * 10 + (*p++ - '0');
	if (*p == '.')
		p++;
	while (*p >= '0' && *p <= '9')
		minor = minor * 10 + (*p++ - '0');
	return major * 100 + minor;
}

static void write_status(const char *dir, const char *unit, const char *text, size_t n)
{
	char path[512], tmp[540];
	struct buf b;
	b.n = 0;
	put(&b, dir);
	put(&b, "/");
	put(&b, unit);
	put(&b, ".status");
	if (b.n >= sizeof(path) - 1)
		return;
	memcpy(path, b.b, b.n);
	path[b.n] = 0;
	put(&b, ".tmp");
	memcpy(tmp, b.b, b.n);
	tmp[b.n] = 0;
	/* the two directories of the default place; a --status-dir must exist */
	if (seq(dir, STATUS_DIR)) {
		sys3(SYS_mkdirat, AT_FDCWD, "/run/netsvc-resilience", 0755);
		sys3(SYS_mkdirat, AT_FDCWD, STATUS_DIR, 0755);
	}
	long fd = sys4(SYS_openat, AT_FDCWD, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return;
	write_all((int)fd, text, n);
	sys1(SYS_close, fd);
	sys4(SYS_renameat, AT_FDCWD, tmp, AT_FDCWD, path);
}

static void add_state_counts(struct buf *o, long n)
{
	long per[12] = {0};
	int first = 1;
	for (long i = 0; i < n; i++)
		per[socks[i].state < 12 ? socks[i].state : 0]++;
	for (int s = 0; s < 12; s++) {
		if (!per[s])
			continue;
		put(o, first ? "" : ", ");
		put(o, state_names[s]);
		put(o, " ");
		putu(o, (unsigned long)per[s]);
		first = 0;
	}
}

static int exec_command(char **cmd, char **envp)
{
	const char *path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
	long r = -ENOENT;
	for (char **e = envp; *e; e++)
		if ((*e)[0] == 'P' && (*e)[1] == 'A' && (*e)[2] == 'T' && (*e)[3] == 'H' && (*e)[4] == '=')
			path = *e + 5;
	for (const char *c = cmd[0]; *c; c++)
		if (*c == '/')
			return (int)-sys3(SYS_execve, cmd[0], cmd, envp);
	while (*path) {
		char full[4096];
		struct buf b;
		const char *end = path;
		while (*end && *end != ':')
			end++;
		b.n = 0;
		putn(&b, path, (size_t)(end - path));
		put(&b, "/");
		put(&b, cmd[0]);
		if (b.n < sizeof(full)) {
			memcpy(full, b.b, b.n);
			full[b.n] = 0;
			long rr = sys3(SYS_execve, full, cmd, envp);
			if (rr != -ENOENT && rr != -ENOTDIR)
				r = rr;
		}
		path = *end ? end + 1 : end;
	}
	return (int)-r;
}

static int drop_privileges(const char *spec, struct buf *why)
{
	/* UID:GID[:G,G,...] (numeric; the module resolves names with the host's NSS) */
	unsigned long ids[66];
	int n = 0;
	char part[16];
	size_t k = 0;
	for (const char *p = spec;; p++) {
		if (*p == ':' || *p == ',' || !*p) {
			part[k] = 0;
			if (n >= 66 || !parse_u(part, 4294967294ul, &ids[n]))
				goto bad;
			n++;
			k = 0;
			if (!*p)
				break;
		} else if (k < sizeof(part) - 1) {
			part[k++] = *p;
		} else {
			goto bad;
		}
	}
	if (n < 2)
		goto bad;
	u32 groups[64];
	for (int i = 2; i < n; i++)
		groups[i - 2] = (u32)ids[i];
	if (sys2(SYS_setgroups, n - 2, groups) < 0 || sys1(SYS_setgid, ids[1]) < 0 ||
	    sys1(SYS_setuid, ids[0]) < 0) {
		put(why, "cannot switch to user ");
		put(why, spec);
		return 0;
	}
	return 1;
bad:
	put(why, "bad --user '");
	put(why, spec);
	put(why, "' (want UID:GID[:GID,...])");
	return 0;
}

__attribute__((used)) void start_c(long *sp)
{
	int argc = (int)sp[0];
	char **argv = (char **)(sp + 1);
	char **envp = argv + argc + 1;
	const char *unit = 0, *user = 0, *status_dir = STATUS_DIR;
	char **cmd = 0;
	struct buf line, st, bad;
	line.n = st.n = bad.n = 0;

	for (int i = 1; i < argc; i++) {
		if (seq(argv[i], "--")) {
			if (i + 1 < argc)
				cmd = argv + i + 1;
			break;
		} else if (seq(argv[i], "--unit") && i + 1 < argc) {
			unit = argv[++i];
		} else if (seq(argv[i], "--user") && i + 1 < argc) {
			user = argv[++i];
		} else if (seq(argv[i], "--status-dir") && i + 1 < argc) {
			status_dir = argv[++i];
		} else if (!parse_range(argv[i])) {
			put(&bad, bad.n ? " " : "");
			put(&bad, argv[i]);
		}
	}
	if (bad.n) {
		put(&line, "netsvc-sockclean: ignoring bad port(s) ");
		putn(&line, bad.b, bad.n);
		put(&line, "\n");
		write_all(1, line.b, line.n);
		line.n = 0;
	}

	if (nranges) {
		char release[65];
		int kver = kernel_version(release, sizeof(release));
		long found = 0, left = 0, destroyed = 0, fd;
		int n_eperm = 0, n_full_unsup = 0, n_tw_unsup = 0, other = 0, inspect_err = 0;
		long kept = 0;
		struct buf cause, states, ports, kept_states;
		cause.n = states.n = ports.n = kept_states.n = 0;
		for (int i = 0; i < nranges; i++) {
			put(&ports, i ? "," : "");
			putu(&ports, ranges[i][0]);
			if (ranges[i][1] != ranges[i][0]) {
				put(&ports, "-");
				putu(&ports, ranges[i][1]);
			}
		}
		fd = sys3(SYS_socket, AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
		if (fd < 0) {
			put(&cause, "netlink refused (socket(AF_NETLINK): ");
			put_err(&cause, (int)-fd);
			put(&cause, ")");
			inspect_err = 1;
		} else {
			long nl[2] = {0, 0};
			int one = 1, big = 1 << 20;
			sys3(SYS_bind, fd, nl, 12);
			sys5(SYS_setsockopt, fd, SOL_NETLINK, NETLINK_CAP_ACK, &one, 4);
			sys5(SYS_setsockopt, fd, SOL_SOCKET, SO_RCVBUF, &big, 4);
			found = dump((int)fd, socks);
			if (found < 0) {
				put(&cause, "sock_diag dump refused (");
				put_err(&cause, (int)-found);
				put(&cause, ")");
				inspect_err = 1;
				found = 0;
			} else if (found > 0) {
				add_state_counts(&states, found);
				destroy((int)fd, found);
				left = dump((int)fd, after);
				if (left >= 0)
					index_after(left);
				long kept_per[12] = {0};
				for (long i = 0; i < found; i++) {
					int e = errs[i], tw = socks[i].state == ST_TIME_WAIT || socks[i].state == ST_FIN_WAIT2;
					if (e == 0 && left >= 0 && still_there(&socks[i])) {
						kept++;	/* acknowledged, yet the kernel kept it */
						kept_per[socks[i].state < 12 ? socks[i].state : 0]++;
					} else if (e == 0)
						destroyed++;
					else if (e == ENOENT)
						;	/* expired meanwhile */
					else if (e == EPERM || e == EACCES)
						n_eperm++;
					else if (e == EOPNOTSUPP)
						tw ? n_tw_unsup++ : n_full_unsup++;
					else if (!other)
						other = e < 0 ? EINVAL : e;
				}
				for (int st = 0; st < 12; st++) {
					if (!kept_per[st])
						continue;
					put(&kept_states, kept_states.n ? ", " : "");
					put(&kept_states, state_names[st]);
					put(&kept_states, " ");
					putu(&kept_states, (unsigned long)kept_per[st]);
				}
				if (left < 0)
					left = found - destroyed;
			}
			sys1(SYS_close, fd);
		}
		if (n_eperm) {
			put(&cause, "no CAP_NET_ADMIN (uid ");
			putu(&cause, (unsigned long)sys1(SYS_getuid, 0));
			put(&cause, ": the unit's User= or CapabilityBoundingSet= drops it)");
		}
		if (n_full_unsup || (n_tw_unsup && kver >= 600)) {
			put(&cause, cause.n ? "; " : "");
			put(&cause, "kernel without SOCK_DESTROY (CONFIG_INET_DIAG_DESTROY)");
		} else if (n_tw_unsup) {
			put(&cause, cause.n ? "; " : "");
			put(&cause, "TIME_WAIT not destroyable on Linux ");
			put(&cause, release);
			put(&cause, " (needs >= 6.0)");
		}
		if (kept) {
			put(&cause, cause.n ? "; " : "");
			put(&cause, "the kernel acknowledged SOCK_DESTROY but kept ");
			putu(&cause, (unsigned long)kept);
			put(&cause, " orphaned socket(s) (");
			putn(&cause, kept_states.b, kept_states.n);
			put(&cause, ") on Linux ");
			put(&cause, release);
		}
		if (other) {
			put(&cause, cause.n ? "; " : "");
			put(&cause, "SOCK_DESTROY failed with ");
			put_err(&cause, other);
		}
		if (left > 0 && !cause.n)
			put(&cause, "new sockets appeared while cleaning");

		put(&line, "netsvc-sockclean: ports ");
		putn(&line, ports.b, ports.n);
		if (inspect_err) {
			put(&line, ": cannot inspect sockets: ");
			putn(&line, cause.b, cause.n);
		} else {
			put(&line, ": found ");
			putu(&line, (unsigned long)found);
			put(&line, ", destroyed ");
			putu(&line, (unsigned long)destroyed);
			put(&line, ", left ");
			putu(&line, (unsigned long)left);
			if (states.n) {
				put(&line, " (");
				putn(&line, states.b, states.n);
				put(&line, ")");
			}
			if (left > 0) {
				put(&line, "; cause: ");
				putn(&line, cause.b, cause.n);
			}
		}
		put(&line, "\n");
		write_all(1, line.b, line.n);

		if (unit && unit_ok(unit)) {
			u64 ts[2] = {0, 0};
			sys2(SYS_clock_gettime, 0, ts);
			put(&st, "version=1\nunit=");
			put(&st, unit);
			put(&st, "\ntime=");
			putu(&st, (unsigned long)ts[0]);
			put(&st, "\nports=");
			putn(&st, ports.b, ports.n);
			put(&st, "\nresult=");
			put(&st, inspect_err ? "error" : left > 0 ? "left" : "ok");
			put(&st, "\nfound=");
			putu(&st, (unsigned long)found);
			put(&st, "\ndestroyed=");
			putu(&st, (unsigned long)destroyed);
			put(&st, "\nleft=");
			putu(&st, (unsigned long)(left > 0 ? left : 0));
			put(&st, "\nstates=");
			putn(&st, states.b, states.n);
			put(&st, "\ncause=");
			if (inspect_err || left > 0)
				putn(&st, cause.b, cause.n);
			put(&st, "\nuid=");
			putu(&st, (unsigned long)sys1(SYS_getuid, 0));
			put(&st, "\nkernel=");
			put(&st, release);
			put(&st, "\n");
			write_status(status_dir, unit, st.b, st.n);
		}
	}

	if (cmd) {
		struct buf why;
		why.n = 0;
		if (user && !drop_privileges(user, &why)) {
			line.n = 0;
			put(&line, "netsvc-sockclean: not starting ");
			put(&line, cmd[0]);
			put(&line, ": ");
			putn(&line, why.b, why.n);
			put(&line, "\n");
			write_all(2, line.b, line.n);
			sys_exit(126);
		}
		int e = exec_command(cmd, envp);
		line.n = 0;
		put(&line, "netsvc-sockclean: cannot execute ");
		put(&line, cmd[0]);
		put(&line, ": ");
		put_err(&line, e);
		put(&line, "\n");
		write_all(2, line.b, line.n);
		sys_exit(127);
	}
	sys_exit(0);
}
