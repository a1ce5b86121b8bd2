/* Freestanding syscall layer for netsvc.resilience's static helpers (x86_64, aarch64).
 *
 * The restart hook runs on every start of a hardened service, on hosts from EL7 (glibc 2.17,
 * kernel 3.10) to the newest: built without libc it has no glibc symbol versions to match,
 * no dynamic loader to run, and starts in well under a millisecond. Only what the hook needs
 * is here. GNU GPL v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt).
 */
#ifndef NETSVC_NOLIBC_H
#define NETSVC_NOLIBC_H

typedef unsigned long size_t;
typedef long ssize_t;
typedef unsigned char u8;
typedef unsigned short u16;
typedef unsigned int u32;
typedef unsigned long long u64;

#define AT_FDCWD (-100)
#define O_WRONLY 01
#define O_CREAT 0100
#define O_TRUNC 01000
#define O_CLOEXEC 02000000
#define O_NOFOLLOW 0400000
#define AT_SYMLINK_NOFOLLOW 0x100
#define S_IFMT 0170000
#define S_IFDIR 0040000
#define CLOCK_MONOTONIC 1

#define EPERM 1
#define ENOENT 2
#define EACCES 13
#define EINVAL 22
#define EAFNOSUPPORT 97
#define EOPNOTSUPP 95
#define EEXIST 17
#define ENOTDIR 20
#define ENOSPC 28
#define EROFS 30
#define ELOOP 40

#if defined(__x86_64__)
#define SYS_read 0
#define SYS_write 1
#define SYS_close 3
#define SYS_getpid 39
#define SYS_socket 41
#define SYS_sendto 44
#define SYS_recvfrom 45
#define SYS_bind 49
#define SYS_setsockopt 54
#define SYS_execve 59
#define SYS_uname 63
#define SYS_getuid 102
#define SYS_setuid 105
#define SYS_setgid 106
#define SYS_setgroups 116
#define SYS_capget 125
#define SYS_clock_gettime 228
#define SYS_exit_group 231
#define SYS_openat 257
#define SYS_mkdirat 258
#define SYS_renameat 264
#define SYS_nanosleep 35
#define SYS_newfstatat 262
/* struct stat of the kernel (x86_64): st_mode at 24, st_uid at 28 */
#define STAT_MODE_OFF 24
#define STAT_UID_OFF 28

static inline long sys6(long n, long a, long b, long c, long d, long e, long f)
{
	long ret;
	register long r10 __asm__("r10") = d;
	register long r8 __asm__("r8") = e;
	register long r9 __asm__("r9") = f;
	__asm__ volatile("syscall"
			 : "=a"(ret)
			 : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9)
			 : "rcx", "r11", "memory");
	return ret;
}

__asm__(".text\n"
	".global _start\n"
	"_start:\n"
	"  xor %rbp, %rbp\n"
	"  mov %rsp, %rdi\n"
	"  and $-16, %rsp\n"
	"  call start_c\n"
	"  hlt\n");

#elif defined(__aarch64__)
#define SYS_mkdirat 34
#define SYS_renameat 38
#define SYS_openat 56
#define SYS_close 57
#define SYS_read 63
#define SYS_write 64
#define SYS_capget 90
#define SYS_exit_group 94
#define SYS_clock_gettime 113
#define SYS_setgid 144
#define SYS_setuid 146
#define SYS_setgroups 159
#define SYS_uname 160
#define SYS_getpid 172
#define SYS_getuid 174
#define SYS_socket 198
#define SYS_bind 200
#define SYS_sendto 206
#define SYS_recvfrom 207
#define SYS_setsockopt 208
#define SYS_execve 221
#define SYS_nanosleep 101
#define SYS_newfstatat 79
/* struct stat of the kernel (asm-generic): st_mode at 16, st_uid at 24 */
#define STAT_MODE_OFF 16
#define STAT_UID_OFF 24

static inline long sys6(long n, long a, long b, long c, long d, long e, long f)
{
	register long x8 __asm__("x8") = n;
	register long x0 __asm__("x0") = a;
	register long x1 __asm__("x1") = b;
	register long x2 __asm__("x2") = c;
	register long x3 __asm__("x3") = d;
	register long x4 __asm__("x4") = e;
	register long x5 __asm__("x5") = f;
	__asm__ volatile("svc 0"
			 : "+r"(x0)
			 : "r"(x8), "r"(x1), "r"(x2), "r"(x3), "r"(x4), "r"(x5)
			 : "memory", "cc");
	return x0;
}

__asm__(".text\n"
	".global _start\n"
	"_start:\n"
	"  mov x29, #0\n"
	"  mov x30, #0\n"
	"  mov x0, sp\n"
	"  bl start_c\n"
	"  brk #0\n");
#else
#error "netsvc nolibc: only x86_64 and aarch64 (other architectures use the Python hook)"
#endif

#define sys1(n, a) sys6(n, (long)(a), 0, 0, 0, 0, 0)
#define sys2(n, a, b) sys6(n, (long)(a), (long)(b), 0, 0, 0, 0)
#define sys3(n, a, b, c) sys6(n, (long)(a), (long)(b), (long)(c), 0, 0, 0)
#define sys4(n, a, b, c, d) sys6(n, (long)(a), (long)(b), (long)(c), (long)(d), 0, 0)
#define sys5(n, a, b, c, d, e) sys6(n, (long)(a), (long)(b), (long)(c), (long)(d), (long)(e), 0)

/* gcc may emit calls to these even with -ffreestanding */
void *memset(void *d, int c, size_t n)
{
	u8 *p = d;
	while (n--)
		*p++ = (u8)c;
	return d;
}

void *memcpy(void *d, const void *s, size_t n)
{
	u8 *p = d;
	const u8 *q = s;
	while (n--)
		*p++ = *q++;
	return d;
}

static size_t slen(const char *s)
{
	size_t n = 0;
	while (s[n])
		n++;
	return n;
}

static int seq(const char *a, const char *b)
{
	while (*a && *a == *b)
		a++, b++;
	return *a == *b;
}

static __attribute__((noreturn)) void sys_exit(int code)
{
	for (;;)
		sys1(SYS_exit_group, code);
}

/* A small append-only text buffer: the one log line, the status file. */
struct buf {
	char b[2048];
	size_t n;
};

static void put(struct buf *o, const char *s)
{
	while (*s && o->n < sizeof(o->b) - 1)
		o->b[o->n++] = *s++;
}

static void putn(struct buf *o, const char *s, size_t len)
{
	while (len-- && *s && o->n < sizeof(o->b) - 1)
		o->b[o->n++] = *s++;
}

static void putu(struct buf *o, unsigned long v)
{
	char t[24];
	int i = 0;
	do
		t[i++] = (char)('0' + v % 10);
	while ((v /= 10) && i < 23);
	while (i)
		if (o->n < sizeof(o->b) - 1)
			o->b[o->n++] = t[--i];
		else
			i--;
}

static void write_all(int fd, const char *p, size_t n)
{
	while (n) {
		long w = sys3(SYS_write, fd, p, n);
		if (w <= 0)
			return;
		p += w;
		n -= (size_t)w;
	}
}

#endif
