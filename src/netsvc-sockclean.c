/* netsvc-sockclean: the restart hook of netsvc.resilience (x86_64 and aarch64 build).
 *
 *   netsvc-sockclean [--unit NAME] [--user UID:GID[:G,G...]] [--status-dir DIR] [--drain-ms MS]
 *                    LISTEN... [-- COMMAND ARGS...]
 *
 * LISTEN is what the service listens on: ADDR:PORT or [ADDR6]:PORT (0.0.0.0 and [::] mean
 * every address of that family), or PORT / LOW-HIGH for every address of both families.
 * Before a service starts, destroys the sockets a dead server left on those LOCAL addresses
 * and ports, so the restart can bind - and only those: another service on the same port at
 * another address keeps every socket. LISTEN and ESTABLISHED sockets are never touched, nor is
 * a FIN_WAIT_1/2, CLOSING or LAST_ACK socket a live process still holds (it called
 * shutdown(SHUT_WR): it has an inode; an orphan has idiag_inode 0).
 * TIME_WAIT and FIN_WAIT_2 sockets hold no data and go at once, and so does any other
 * orphan whose send queue holds nothing but its FIN. A FIN_WAIT_1, CLOSING or LAST_ACK
 * socket still holding data is still delivering a response (the kernel keeps sending after
 * close()): it gets up to --drain-ms (default 2000) to deliver it, and only then is destroyed;
 * the line and the status file say how many were destroyed with how many bytes unsent.
 * Counts again afterwards, and when sockets are left it says why, from the errno the kernel
 * gave for each socket: no CAP_NET_ADMIN (EPERM), netlink refused (socket() failed), a
 * kernel without SOCK_DESTROY, or TIME_WAIT not destroyable before Linux 6.0 (EOPNOTSUPP).
 * Logs one line on stdout (the journal) and, with --unit, writes
 * /run/netsvc-resilience/hook/NAME.status for the audit - only into a directory that root
 * owns and nobody else may write (every directory up to /), never through a symlink
 * (O_NOFOLLOW). It never blocks a start: it exits 0 (systemd runs it as
 * ExecStartPre=+-...). With "-- COMMAND" it then drops to --user (numeric ids, resolved by
 * the module) and exec's COMMAND: the supervisord wrapper.
 *
 * The Python twin (plugins/module_utils/primitives/_sockdiag.py, run as a script) does the same on
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
#define DRAIN_DEFAULT_MS 2000
#define DRAIN_MAX_MS 600000
#define DRAIN_STEP_MS 10

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
	u32 wq;		/* idiag_wqueue: write_seq - snd_una, the FIN included */
};

/* What the service listens on: a family (0: both) and an address (any: every address) on
 * a range of ports. */
struct target {
	u8 family, any;
	u8 addr[16];
	u16 lo, hi;
};

static struct sock socks[MAX_SOCKS];	/* found first */
static struct sock after[MAX_SOCKS];	/* a later look */
static struct sock work[MAX_SOCKS];	/* one destroy batch */
static int werr[MAX_SOCKS];
static int res[MAX_SOCKS];		/* per socks[i]: errno of its destroy (0: done) */
static u8 fate[MAX_SOCKS];		/* per socks[i]: see FATE_* */
#define FATE_WAIT 0
#define FATE_DESTROYED 1
#define FATE_GONE 2			/* delivered its data and closed while we waited */
#define HASH_SIZE (1 << 18)
static int hash_tab[HASH_SIZE];	/* index + 1 into after[], 0 = empty */
static u8 rbuf[65536];
static u8 sbuf[BATCH * (sizeof(struct nlh) + sizeof(struct req))];

static struct target targets[MAX_PORTS];
static int ntargets;
static u32 seqno;

static const char *const state_names[12] = {
	"?", "established", "syn-sent", "syn-recv", "fin-wait-1", "fin-wait-2",
	"time-wait", "close", "close-wait", "last-ack", "listen", "closing",
};

static u16 port_of(const u8 *id) { return (u16)(id[0] << 8 | id[1]); }

/* a socket of ours: local port and (where the target names one) local address */
static int wanted(u8 family, const u8 *id)
{
	u16 port = port_of(id);
	for (int i = 0; i < ntargets; i++) {
		const struct target *t = &targets[i];
		if (port < t->lo || port > t->hi || (t->family && t->family != family))
			continue;
		if (!t->family || t->any)
			return 1;
		int n = family == AF_INET ? 4 : 16, same = 1;
		for (int k = 0; k < n; k++)
			if (id[4 + k] != t->addr[k])
				same = 0;
		if (same)
			return 1;
	}
	return 0;
}

/* bytes the socket still has to deliver: its send queue without the FIN's sequence number */
static u32 unsent(const struct sock *s)
{
	if (s->state == ST_TIME_WAIT || s->state == ST_FIN_WAIT2)
		return 0;
	if (s->state == ST_FIN_WAIT1 || s->state == ST_CLOSING || s->state == ST_LAST_ACK)
		return s->wq ? s->wq - 1 : 0;
	return s->wq;
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
	case EEXIST: return "EEXIST";
	case ENOTDIR: return "ENOTDIR";
	case ENOSPC: return "ENOSPC";
	case EROFS: return "EROFS";
	case ELOOP: return "ELOOP";
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
		/* S_GE lo (no: reject), S_LE hi (no: reject); exact targets checked below */
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
					u32 inode;
					memcpy(&inode, msg + 68, 4);	/* idiag_inode: 0 for an orphan */
					if (((ORPHAN_MASK >> msg[1]) & 1) && (msg[1] == ST_TIME_WAIT || !inode) &&
					    wanted(msg[0], msg + 4) && *n < MAX_SOCKS) {
						out[*n].family = msg[0];
						out[*n].state = msg[1];
						memcpy(out[*n].id, msg + 4, 48);
						memcpy(&out[*n].wq, msg + 60, 4);
						(*n)++;
					}
				}
			}
			off += (h->len + 3) & ~3u;
		}
	}
}

/* One dump of TCP sockets in ORPHAN_MASK on our targets, both families: the legacy request
 * (one table walk), else - a kernel that refuses it - one request per family. Returns the
 * count stored in out[] (at most MAX_SOCKS), or -errno. */
static int legacy_refused;

static long dump(int fd, struct sock *out)
{
	long n = 0, rc;
	u16 lo = 65535, hi = 0;
	for (int i = 0; i < ntargets; i++) {
		if (targets[i].lo < lo)
			lo = targets[i].lo;
		if (targets[i].hi > hi)
			hi = targets[i].hi;
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

/* SOCK_DESTROY each socket of work[0..n); werr[i] = 0 or errno. */
static void destroy(int fd, long n)
{
	for (long start = 0; start < n; start += BATCH) {
		long cnt = n - start < BATCH ? n - start : BATCH;
		u32 first = seqno + 1;
		size_t len = 0;
		for (long i = 0; i < cnt; i++) {
			struct nlh *h = (struct nlh *)(sbuf + len);
			struct req *r = (struct req *)(sbuf + len + sizeof(*h));
			struct sock *s = &work[start + i];
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
			werr[start + i] = -1;
			len += h->len;
		}
		if (sys6(SYS_sendto, fd, (long)sbuf, len, 0, 0, 0) < 0) {
			for (long i = 0; i < cnt; i++)
				werr[start + i] = EINVAL;
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
					if (werr[i] < 0) {
						werr[i] = -*(int *)(rbuf + off + sizeof(struct nlh));
						pending--;
					}
				}
				off += (h->len + 3) & ~3u;
			}
		}
	}
}

/* Destroy socks[i] for every i of idx[0..n) (each as it looks now: ``now``, or socks[i]) */
static void destroy_these(int fd, const long *idx, const struct sock *const *now, long n)
{
	for (long k = 0; k < n; k++)
		work[k] = now && now[k] ? *now[k] : socks[idx[k]];
	destroy(fd, n);
	for (long k = 0; k < n; k++) {
		res[idx[k]] = werr[k];
		fate[idx[k]] = FATE_DESTROYED;
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

static const struct sock *find_after(const struct sock *s)
{
	u32 h = tuple_hash(s->id) & (HASH_SIZE - 1);
	while (hash_tab[h]) {
		if (same_tuple(after[hash_tab[h] - 1].id, s->id))
			return &after[hash_tab[h] - 1];
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

/* "LOW" or "LOW-HIGH" (1-65535) into t->lo, t->hi */
static int parse_ports(const char *a, size_t len, struct target *t)
{
	char lo[8], hi[8];
	size_t dash = 0, i;
	unsigned long l, h;
	while (dash < len && a[dash] != '-')
		dash++;
	if (!dash || dash > 5 || (dash < len && (len - dash - 1 == 0 || len - dash - 1 > 5)))
		return 0;
	for (i = 0; i < dash; i++)
		lo[i] = a[i];
	lo[dash] = 0;
	if (!parse_u(lo, 65535, &l) || l == 0)
		return 0;
	h = l;
	if (dash < len) {
		for (i = dash + 1; i < len; i++)
			hi[i - dash - 1] = a[i];
		hi[len - dash - 1] = 0;
		if (!parse_u(hi, 65535, &h) || h < l)
			return 0;
	}
	t->lo = (u16)l;
	t->hi = (u16)h;
	return 1;
}

static int parse_v4(const char *a, size_t len, u8 *out)
{
	unsigned long part = 0;
	int dots = 0, digits = 0;
	for (size_t i = 0; i <= len; i++) {
		if (i == len || a[i] == '.') {
			if (!digits || part > 255 || (i < len && dots == 3))
				return 0;
			out[dots++] = (u8)part;
			part = 0;
			digits = 0;
		} else if (a[i] >= '0' && a[i] <= '9' && digits < 3) {
			part = part * 10 + (unsigned long)(a[i] - '0');
			digits++;
		} else {
			return 0;
		}
	}
	return dots == 4;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* IPv6 text (with '::' and an IPv4 tail) -> 16 bytes */
static int parse_v6(const char *a, size_t len, u8 *out)
{
	u16 words[8];
	int n = 0, gap = -1;
	size_t i = 0;
	if (len >= 2 && a[0] == ':' && a[1] == ':') {
		gap = 0;
		i = 2;
	} else if (len && a[0] == ':') {
		return 0;
	}
	while (i < len) {
		size_t j = i;
		unsigned v = 0;
		int digits = 0, dot = 0;
		while (j < len && a[j] != ':') {
			if (a[j] == '.')
				dot = 1;
			j++;
		}
		if (dot) {
			u8 v4[4];
			if (n > 6 || !parse_v4(a + i, len - i, v4))
				return 0;
			words[n++] = (u16)(v4[0] << 8 | v4[1]);
			words[n++] = (u16)(v4[2] << 8 | v4[3]);
			i = len;
			break;
		}
		for (size_t k = i; k < j; k++) {
			int h = hexval(a[k]);
			if (h < 0 || ++digits > 4)
				return 0;
			v = v << 4 | (unsigned)h;
		}
		if (!digits || n >= 8)
			return 0;
		words[n++] = (u16)v;
		if (j == len) {
			i = j;
			break;
		}
		if (j + 1 < len && a[j + 1] == ':') {
			if (gap >= 0)
				return 0;
			gap = n;
			i = j + 2;
		} else {
			if (j + 1 == len)
				return 0;
			i = j + 1;
		}
	}
	if (gap < 0 ? n != 8 : n > 7)
		return 0;
	int fill = 8 - n, w = 0;
	for (int k = 0; k < 8; k++) {
		u16 v;
		if (gap >= 0 && k >= gap && k < gap + fill)
			v = 0;
		else
			v = words[w++];
		out[2 * k] = (u8)(v >> 8);
		out[2 * k + 1] = (u8)v;
	}
	return 1;
}

/* PORT | LOW-HIGH | A.B.C.D:PORT | [V6]:PORT (the first n characters of a) into *out */
static int parse_addr(const char *a, size_t n, struct target *out)
{
	struct target t;
	size_t colon;
	memset(&t, 0, sizeof(t));
	if (!n)
		return 0;
	if (a[0] == '[') {
		size_t close = 1;
		while (close < n && a[close] != ']')
			close++;
		if (close >= n || close + 1 >= n || a[close + 1] != ':' ||
		    !parse_v6(a + 1, close - 1, t.addr) || !parse_ports(a + close + 2, n - close - 2, &t))
			return 0;
		t.family = AF_INET6;
	} else {
		for (colon = n; colon > 0 && a[colon - 1] != ':'; colon--)
			;
		if (colon) {
			if (!parse_v4(a, colon - 1, t.addr) || !parse_ports(a + colon, n - colon, &t))
				return 0;
			t.family = AF_INET;
		} else if (!parse_ports(a, n, &t)) {
			return 0;
		}
	}
	if (t.family) {
		int k, len = t.family == AF_INET ? 4 : 16;
		t.any = 1;
		for (k = 0; k < len; k++)
			if (t.addr[k])
				t.any = 0;
	}
	*out = t;
	return 1;
}

/* A bad option and its value, appended to the line that names what was not taken. */
static void bad_option(struct buf *why, const char *option, const char *value)
{
	put(why, why->n ? " " : "");
	put(why, option);
	put(why, " ");
	put(why, value);
}

/* One LISTEN argument appended to the targets the cleanup takes. */
static int parse_target(const char *a)
{
	if (ntargets >= MAX_PORTS || !parse_addr(a, slen(a), &targets[ntargets]))
		return 0;
	ntargets++;
	return 1;
}

/* systemd's id of this start of the unit ($INVOCATION_ID, 32 hex digits, systemd >= 232): the
 * status file carries it, so a reader can tell this start's record from an earlier one's. */
static const char *invocation_id(char **envp)
{
	static const char key[] = "INVOCATION_ID=";
	for (char **e = envp; *e; e++) {
		const char *v = *e;
		int i = 0;
		while (key[i] && v[i] == key[i])
			i++;
		if (key[i])
			continue;
		v += i;
		for (i = 0; i < 32; i++)
			if (!((v[i] >= '0' && v[i] <= '9') || (v[i] >= 'a' && v[i] <= 'f')))
				return 0;
		return v[32] ? 0 : v;
	}
	return 0;
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

static long now_ms(void)
{
	long ts[2] = {0, 0};
	sys2(SYS_clock_gettime, CLOCK_MONOTONIC, ts);
	return ts[0] * 1000 + ts[1] / 1000000;
}

static void sleep_ms(long ms)
{
	long ts[2] = {ms / 1000, (ms % 1000) * 1000000};
	sys2(SYS_nanosleep, ts, 0);
}

/* Why root may not write into ``dir`` (a directory: itself and every parent up to /),
 * or 0. Checked without following a symlink at any step. */
static const char *unsafe_dir(const char *dir, struct buf *why)
{
	char path[512];
	size_t n = slen(dir);
	if (!n || n >= sizeof(path) || dir[0] != '/') {
		put(why, "not an absolute path");
		return why->b;
	}
	memcpy(path, dir, n + 1);
	for (;;) {
		u8 st[256];
		memset(st, 0, sizeof(st));
		if (sys4(SYS_newfstatat, AT_FDCWD, path, st, AT_SYMLINK_NOFOLLOW) < 0) {
			put(why, path);
			put(why, " cannot be read");
			return why->b;
		}
		u32 mode = *(u32 *)(st + STAT_MODE_OFF), uid = *(u32 *)(st + STAT_UID_OFF);
		if ((mode & S_IFMT) != S_IFDIR) {
			put(why, path);
			put(why, " is not a directory");
			return why->b;
		}
		if (uid != 0) {
			put(why, path);
			put(why, " is owned by uid ");
			putu(why, uid);
			return why->b;
		}
		if (mode & 022) {
			put(why, path);
			put(why, " is writable by group or others");
			return why->b;
		}
		if (n <= 1)
			return 0;
		while (n > 1 && path[n - 1] != '/')
			n--;
		path[n > 1 ? n - 1 : 1] = 0;
		n = n > 1 ? n - 1 : 1;
	}
}

static void write_status(const char *dir, const char *unit, const char *ext, const char *text, size_t len,
			 struct buf *why)
{
	char path[512], tmp[540];
	struct buf b;
	b.n = 0;
	put(&b, dir);
	put(&b, "/");
	put(&b, unit);
	put(&b, ext);
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
	if (unsafe_dir(dir, why))
		return;
	long fd = sys4(SYS_openat, AT_FDCWD, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (fd < 0) {
		put(why, tmp);
		put(why, ": ");
		put_err(why, (int)-fd);
		return;
	}
	write_all((int)fd, text, len);
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

static long idx[MAX_SOCKS];
static const struct sock *cur[MAX_SOCKS];

/* The cleanup: what is done and counted (see the line below). */
struct outcome {
	long found, left, destroyed, kept, drained, unsent_socks, drain_ms;
	unsigned long unsent_bytes;
	int n_eperm, n_full_unsup, n_tw_unsup, other, inspect_err;
	struct buf cause, states, kept_states;
};

static void tally(struct outcome *o, int kver, const char *release)
{
	long kept_per[12] = {0};
	for (long i = 0; i < o->found; i++) {
		if (fate[i] != FATE_DESTROYED)
			continue;
		int e = res[i], tw = socks[i].state == ST_TIME_WAIT || socks[i].state == ST_FIN_WAIT2;
		if (e == 0 && o->left >= 0 && find_after(&socks[i])) {
			o->kept++;	/* acknowledged, yet the kernel kept it */
			kept_per[socks[i].state < 12 ? socks[i].state : 0]++;
		} else if (e == 0)
			o->destroyed++;
		else if (e == ENOENT)
			;	/* expired meanwhile */
		else if (e == EPERM || e == EACCES)
			o->n_eperm++;
		else if (e == EOPNOTSUPP)
			tw ? o->n_tw_unsup++ : o->n_full_unsup++;
		else if (!o->other)
			o->other = e < 0 ? EINVAL : e;
	}
	for (int st = 0; st < 12; st++) {
		if (!kept_per[st])
			continue;
		put(&o->kept_states, o->kept_states.n ? ", " : "");
		put(&o->kept_states, state_names[st]);
		put(&o->kept_states, " ");
		putu(&o->kept_states, (unsigned long)kept_per[st]);
	}
	if (o->n_eperm) {
		put(&o->cause, "no CAP_NET_ADMIN (uid ");
		putu(&o->cause, (unsigned long)sys1(SYS_getuid, 0));
		put(&o->cause, ": the unit's User= or CapabilityBoundingSet= drops it)");
	}
	if (o->n_full_unsup || (o->n_tw_unsup && kver >= 600)) {
		put(&o->cause, o->cause.n ? "; " : "");
		put(&o->cause, "kernel without SOCK_DESTROY (CONFIG_INET_DIAG_DESTROY)");
	} else if (o->n_tw_unsup) {
		put(&o->cause, o->cause.n ? "; " : "");
		put(&o->cause, "TIME_WAIT not destroyable on Linux ");
		put(&o->cause, release);
		put(&o->cause, " (needs >= 6.0)");
	}
	if (o->kept) {
		put(&o->cause, o->cause.n ? "; " : "");
		put(&o->cause, "the kernel acknowledged SOCK_DESTROY but kept ");
		putu(&o->cause, (unsigned long)o->kept);
		put(&o->cause, " orphaned socket(s) (");
		putn(&o->cause, o->kept_states.b, o->kept_states.n);
		put(&o->cause, ") on Linux ");
		put(&o->cause, release);
	}
	if (o->other) {
		put(&o->cause, o->cause.n ? "; " : "");
		put(&o->cause, "SOCK_DESTROY failed with ");
		put_err(&o->cause, o->other);
	}
	if (o->left > 0 && !o->cause.n)
		put(&o->cause, "new sockets appeared while cleaning");
}

/* Destroy at once what holds nothing to deliver; give the rest up to drain_ms to deliver
 * their data (looking again every DRAIN_STEP_MS), then destroy what still holds some. */
static void clean(int fd, struct outcome *o, long drain_ms)
{
	long n = 0, waiting = 0, t0 = now_ms();
	for (long i = 0; i < o->found; i++) {
		fate[i] = FATE_WAIT;
		if (!unsent(&socks[i]))
			idx[n++] = i;
		else
			waiting++;
	}
	destroy_these(fd, idx, 0, n);
	while (waiting && now_ms() - t0 < drain_ms) {
		long m;
		sleep_ms(DRAIN_STEP_MS);
		m = dump(fd, after);
		if (m < 0)
			break;
		index_after(m);
		n = waiting = 0;
		for (long i = 0; i < o->found; i++) {
			if (fate[i] != FATE_WAIT)
				continue;
			const struct sock *s = find_after(&socks[i]);
			if (!s) {
				fate[i] = FATE_GONE;	/* delivered, acknowledged, closed */
				o->drained++;
			} else if (!unsent(s)) {
				idx[n] = i;
				cur[n++] = s;
				o->drained++;
			} else {
				socks[i].wq = s->wq;
				waiting++;
			}
		}
		destroy_these(fd, idx, cur, n);
	}
	if (o->drained || waiting)
		o->drain_ms = now_ms() - t0;
	n = 0;
	for (long i = 0; i < o->found; i++) {
		if (fate[i] != FATE_WAIT)
			continue;
		o->unsent_socks++;
		o->unsent_bytes += unsent(&socks[i]);
		idx[n++] = i;
	}
	destroy_these(fd, idx, 0, n);
}

/* The cleanup of the targets: one line on stdout and, with ``unit``, the status file. */
static void run_cleanup(const char *unit, const struct buf *ports, const char *status_dir, unsigned long drain_ms,
			char **envp)
{
	struct buf line, st;
	line.n = st.n = 0;
	char release[65];
	int kver = kernel_version(release, sizeof(release));
	long fd;
	static struct outcome o;
	memset(&o, 0, sizeof(o));
	struct buf nowrite;
	nowrite.n = 0;
	fd = sys3(SYS_socket, AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
	if (fd < 0) {
		put(&o.cause, "netlink refused (socket(AF_NETLINK): ");
		put_err(&o.cause, (int)-fd);
		put(&o.cause, ")");
		o.inspect_err = 1;
	} else {
		long nl[2] = {0, 0};
		int one = 1, big = 1 << 20;
		sys3(SYS_bind, fd, nl, 12);
		sys5(SYS_setsockopt, fd, SOL_NETLINK, NETLINK_CAP_ACK, &one, 4);
		sys5(SYS_setsockopt, fd, SOL_SOCKET, SO_RCVBUF, &big, 4);
		o.found = dump((int)fd, socks);
		if (o.found < 0) {
			put(&o.cause, "sock_diag dump refused (");
			put_err(&o.cause, (int)-o.found);
			put(&o.cause, ")");
			o.inspect_err = 1;
			o.found = 0;
		} else if (o.found > 0) {
			add_state_counts(&o.states, o.found);
			clean((int)fd, &o, (long)drain_ms);
			o.left = dump((int)fd, after);
			if (o.left >= 0)
				index_after(o.left);
			tally(&o, kver, release);
			if (o.left < 0)
				o.left = o.found - o.destroyed;
		}
		sys1(SYS_close, fd);
	}

	put(&line, "netsvc-sockclean: ports ");
	putn(&line, ports->b, ports->n);
	if (o.inspect_err) {
		put(&line, ": cannot inspect sockets: ");
		putn(&line, o.cause.b, o.cause.n);
	} else {
		put(&line, ": found ");
		putu(&line, (unsigned long)o.found);
		put(&line, ", destroyed ");
		putu(&line, (unsigned long)o.destroyed);
		put(&line, ", left ");
		putu(&line, (unsigned long)o.left);
		if (o.states.n) {
			put(&line, " (");
			putn(&line, o.states.b, o.states.n);
			put(&line, ")");
		}
		if (o.drained) {
			put(&line, "; delivered ");
			putu(&line, (unsigned long)o.drained);
			put(&line, " in ");
			putu(&line, (unsigned long)o.drain_ms);
			put(&line, " ms");
		}
		if (o.unsent_socks) {
			put(&line, "; destroyed ");
			putu(&line, (unsigned long)o.unsent_socks);
			put(&line, " with ");
			putu(&line, o.unsent_bytes);
			put(&line, " bytes unsent after ");
			putu(&line, (unsigned long)o.drain_ms);
			put(&line, " ms");
		}
		if (o.left > 0) {
			put(&line, "; cause: ");
			putn(&line, o.cause.b, o.cause.n);
		}
	}

	if (unit && unit_ok(unit)) {
		u64 ts[2] = {0, 0};
		sys2(SYS_clock_gettime, 0, ts);
		put(&st, "version=2\nunit=");
		put(&st, unit);
		put(&st, "\ntime=");
		putu(&st, (unsigned long)ts[0]);
		put(&st, "\nports=");
		putn(&st, ports->b, ports->n);
		put(&st, "\nresult=");
		put(&st, o.inspect_err ? "error" : o.left > 0 ? "left" : o.unsent_socks ? "lost" : "ok");
		put(&st, "\nfound=");
		putu(&st, (unsigned long)o.found);
		put(&st, "\ndestroyed=");
		putu(&st, (unsigned long)o.destroyed);
		put(&st, "\nleft=");
		putu(&st, (unsigned long)(o.left > 0 ? o.left : 0));
		put(&st, "\nstates=");
		putn(&st, o.states.b, o.states.n);
		put(&st, "\ndelivered=");
		putu(&st, (unsigned long)o.drained);
		put(&st, "\ndrain_ms=");
		putu(&st, (unsigned long)o.drain_ms);
		put(&st, "\nunsent_sockets=");
		putu(&st, (unsigned long)o.unsent_socks);
		put(&st, "\nunsent_bytes=");
		putu(&st, o.unsent_bytes);
		put(&st, "\ncause=");
		if (o.inspect_err || o.left > 0)
			putn(&st, o.cause.b, o.cause.n);
		put(&st, "\nuid=");
		putu(&st, (unsigned long)sys1(SYS_getuid, 0));
		put(&st, "\nkernel=");
		put(&st, release);
		put(&st, "\ninvocation=");
		if (invocation_id(envp))
			put(&st, invocation_id(envp));
		put(&st, "\n");
		write_status(status_dir, unit, ".status", st.b, st.n, &nowrite);
		if (nowrite.n) {
			put(&line, "; status not written: ");
			putn(&line, nowrite.b, nowrite.n);
		}
	}
	put(&line, "\n");
	write_all(1, line.b, line.n);
}

#include "hold.h"

__attribute__((used)) void start_c(long *sp)
{
	int argc = (int)sp[0];
	char **argv = (char **)(sp + 1);
	char **envp = argv + argc + 1;
	const char *unit = 0, *user = 0, *status_dir = STATUS_DIR;
	unsigned long drain_ms = DRAIN_DEFAULT_MS;
	char **cmd = 0;
	int hold = 0;
	static struct hold h;
	struct buf line, bad, ports;
	line.n = bad.n = ports.n = 0;
	h.burst = 20;
	h.interval_s = 10;

	for (int i = 1; i < argc; i++) {
		if (seq(argv[i], "--")) {
			if (i + 1 < argc)
				cmd = argv + i + 1;
			break;
		} else if (seq(argv[i], "--unit") && i + 1 < argc) {
			unit = argv[++i];
		} else if (seq(argv[i], "--hold")) {
			hold = 1;
		} else if (seq(argv[i], "--listen") && i + 1 < argc) {
			if (!parse_listen(&h, argv[++i]))
				bad_option(&h.why, "--listen", argv[i]);
		} else if (seq(argv[i], "--preload") && i + 1 < argc) {
			h.preload = argv[++i];
			if (h.preload[0] != '/')
				bad_option(&h.why, "--preload", argv[i]);
		} else if (seq(argv[i], "--restarts") && i + 1 < argc) {
			if (!parse_restarts(&h, argv[++i]))
				bad_option(&h.why, "--restarts", argv[i]);
		} else if (seq(argv[i], "--user") && i + 1 < argc) {
			user = argv[++i];
		} else if (seq(argv[i], "--status-dir") && i + 1 < argc) {
			status_dir = argv[++i];
		} else if (seq(argv[i], "--drain-ms") && i + 1 < argc) {
			if (!parse_u(argv[++i], DRAIN_MAX_MS, &drain_ms)) {
				bad_option(&bad, "--drain-ms", argv[i]);
				drain_ms = DRAIN_DEFAULT_MS;
			}
		} else if (!parse_target(argv[i])) {
			put(&bad, bad.n ? " " : "");
			put(&bad, argv[i]);
		} else {
			put(&ports, ports.n ? "," : "");	/* the label: the targets as given */
			put(&ports, argv[i]);
		}
	}
	if (bad.n) {
		put(&line, "netsvc-sockclean: ignoring bad argument(s) ");
		putn(&line, bad.b, bad.n);
		put(&line, "\n");
		write_all(1, line.b, line.n);
		line.n = 0;
	}

	if (hold || h.nls || h.preload || h.why.n) {
		/* the holder runs nothing half-configured: a bad option is the supervisor's to show */
		const char *why = !hold ? "--listen, --preload and --restarts need --hold" :
				  !cmd ? "--hold needs -- COMMAND" : h.preload && !h.nls ? "--preload needs --listen" : 0;
		if (why || h.why.n) {
			line.n = 0;
			put(&line, "netsvc-sockclean: not starting: ");
			if (h.why.n) {
				put(&line, "bad ");
				putn(&line, h.why.b, h.why.n);
				put(&line, " (SPEC: ADDR:PORT or [ADDR6]:PORT[,backlog=N][,v6only|,dualstack][,reuseport]"
					   "[,freebind][,transparent][,mark=N]; --restarts N/SECONDS, N 1-64; --preload an "
					   "absolute path)");
			} else {
				put(&line, why);
			}
			put(&line, "\n");
			write_all(2, line.b, line.n);
			sys_exit(2);
		}
		hold_main(&h, cmd, envp, user, unit, &ports, status_dir, drain_ms);
	}
	if (ntargets)
		run_cleanup(unit, &ports, status_dir, drain_ms, envp);

	if (cmd)
		run_command(cmd, envp, user, 0);
	sys_exit(0);
}
