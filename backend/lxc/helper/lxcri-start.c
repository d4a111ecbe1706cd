/*
 * lxcri-start: the single-threaded helper of lxcri's lxc backend.
 *
 * liblxc refuses to start a container in the foreground from a threaded process (every Go
 * program is threaded), and a daemonized start loses the init's stdio and exit status. This
 * helper runs as a child of the shim with the process's stdio and does the liblxc calls
 * that must own the container's processes:
 *
 *   lxcri-start start NAME LXCPATH --spec-fd FD
 *       Starts container NAME of LXCPATH (config: LXCPATH/NAME/config) in the foreground.
 *       The init is the OCI process itself (the record's args, or lxc.init.cmd when it has
 *       none), as the container's PID 1 with this helper's stdin/stdout/stderr. The helper
 *       is the container's monitor and exits with the init's status. The record's env
 *       replaces the configuration's lxc.environment (values pass exactly).
 *       Record keys: umask OCTAL, cap-inheritable HEX, env K=V (repeated), arg A (repeated).
 *
 *   lxcri-start exec NAME LXCPATH --spec-fd FD
 *       Runs the record's args inside the running container NAME (lxc attach) with this
 *       helper's stdio, waits for it and exits with its status. Record keys:
 *         cwd DIR               working directory (must exist in the container)
 *         uid N, gid N          user and group
 *         group N               an additional group (repeated)
 *         env K=V               environment (repeated); the environment is exactly these
 *         umask OCTAL
 *         tty 1                 run on a terminal: with file descriptor 4 open (a unix
 *                               socket), a pty is allocated from the container's
 *                               /dev/ptmx and its master sent over fd 4 (SCM_RIGHTS);
 *                               otherwise stdin must be a terminal. Either way the
 *                               terminal becomes the process's controlling terminal.
 *         no-new-privs 1
 *         cap-bounding, cap-effective, cap-permitted, cap-inheritable, cap-ambient HEX
 *                               capability sets (all five or none)
 *         rlimit RES:SOFT:HARD  (repeated; numeric RLIMIT_*, SOFT and HARD decimal
 *                               0..2^64-1 or "unlimited")
 *         oom-score-adj N
 *         arg A                 the command and its arguments (repeated, at least one)
 *
 *   The spec record (start and exec): everything taken from the container's spec reaches
 *   the helper through file descriptor FD (a pipe the shim writes), never through argv:
 *   /proc/PID/cmdline is world-readable and the helper lives as long as the container.
 *   The record is a sequence of NUL-terminated strings:
 *       "lxcri-start-spec-v1" (KEY VALUE)... "end"
 *   The helper reads FD to its end and closes it before anything else; a record that is
 *   larger than SPEC_MAX, lacks a terminator, the magic or the end marker, holds an
 *   unknown or repeated key, or a value that does not parse, is an error (exit 255).
 *
 *   lxcri-start pidhook ...
 *       Internal: the lxc.hook.start-host hook the start mode installs.
 *
 *   lxcri-start devices SPEC...
 *       lxc.hook.autodev hook: makes device nodes in the container's root filesystem
 *       ($LXC_ROOTFS_MOUNT), resolving paths inside it. SPEC is TYPE:MAJOR:MINOR:MODE:UID:GID:PATH
 *       (TYPE c, b or p; MODE octal) or "ptmx" (/dev/ptmx -> pts/ptmx).
 *
 *   lxcri-start sysctl KEY=VALUE...
 *       lxc.hook.start-host hook: joins the net, ipc and uts namespaces of the container's
 *       init ($LXC_PID) and writes each VALUE to /proc/sys/KEY (dots become slashes).
 *
 *   lxcri-start oci-hook FILE
 *       lxc.hook.start-host / lxc.hook.mount hook: runs the OCI hook FILE describes (see
 *       backend/lxc/translate_security.go, hookFile) with the container state on stdin.
 *
 *   lxcri-start oom-count COUNTERS OUT
 *       lxc.hook.stop hook: copies the "oom_kill N" count of the cgroup file COUNTERS
 *       (memory.oom_control on cgroup v1, memory.events on v2) to OUT as "N\n". liblxc runs
 *       stop hooks after the init died and before it removes the container's cgroup, so
 *       the shim learns how many OOM kills there were even though the cgroup is gone by the
 *       time it hears of the exit. A missing COUNTERS (no memory controller) writes nothing.
 *
 * Gate (start): when file descriptor 5 is open, the init is held after its pid was
 * reported, before it runs its program (liblxc has set the container up): a byte read from
 * fd 5 releases it, end of file aborts the start. This is runc's create/start split.
 *
 * Reporting: when file descriptor 3 is open, the helper writes one line to it:
 *   "pid N\n"      the host pid of the init (start) or of the attached process (exec),
 *                  written before that process runs its program;
 *   "error MSG\n"  the helper failed before any process ran.
 * Exit status: the process's exit code, or 128+signal when a signal killed it. When the
 * helper itself fails it exits 255 (after writing an error line).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/capability.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <grp.h>
#include <unistd.h>

#include <linux/openat2.h>
#include <sys/sysmacros.h>
#include <time.h>

#include <lxc/attach_options.h>
#include <lxc/lxccontainer.h>

#define REPORT_FD 3
#define CONSOLE_FD 4
#define GATE_FD 5
#define GATE_FILE_ENV "LXCRI_GATE_FILE"
#define HELPER_FAILED 255
#define PID_FILE_ENV "LXCRI_PID_FILE"
#define MONITOR_PID_ENV "LXCRI_MONITOR_PID"

static bool report_ok;

/* report writes one line to the report fd, if there is one. */
static void report(const char *fmt, ...)
{
	char buf[4096];
	va_list ap;
	int n;

	if (!report_ok)
		return;
	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf) - 1, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if (n > (int)sizeof(buf) - 2)
		n = sizeof(buf) - 2;
	/* one line: no embedded newlines */
	for (int i = 0; i < n; i++)
		if (buf[i] == '\n')
			buf[i] = ' ';
	buf[n++] = '\n';
	/*
	 * A reader that went away must not kill us with SIGPIPE; ignoring the signal is no
	 * option (the container's init would inherit the disposition), so block it and
	 * consume a pending one.
	 */
	{
		sigset_t pipe, old;
		struct timespec zero = { 0, 0 };
		ssize_t w;

		sigemptyset(&pipe);
		sigaddset(&pipe, SIGPIPE);
		sigprocmask(SIG_BLOCK, &pipe, &old);
		do {
			w = write(REPORT_FD, buf, n);
		} while (w < 0 && errno == EINTR);
		if (w < 0 && errno == EPIPE)
			sigtimedwait(&pipe, NULL, &zero);
		sigprocmask(SIG_SETMASK, &old, NULL);
	}
}

/* vfail reports a line "KIND MSG", prints MSG to stderr and exits HELPER_FAILED. */
static void __attribute__((noreturn)) vfail(const char *kind, const char *fmt, va_list ap)
{
	char buf[4096];

	vsnprintf(buf, sizeof(buf), fmt, ap);
	report("%s %s", kind, buf);
	if (!report_ok)
		fprintf(stderr, "lxcri-start: %s\n", buf);
	exit(HELPER_FAILED);
}

/* fail reports an error line, prints it to stderr and exits HELPER_FAILED. */
static void __attribute__((noreturn)) fail(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vfail("error", fmt, ap);
}

/*
 * fail_invalid is fail for a configuration liblxc refuses: the line's kind, "invalid",
 * lets the shim tell a bad spec (InvalidArgument) from a failed start.
 */
static void __attribute__((noreturn)) fail_invalid(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vfail("invalid", fmt, ap);
}

static int exit_status(int status)
{
	/*
	 * liblxc's monitor reports an init killed by a signal as (sig << 8 | 0x7f), which
	 * reads as "stopped by sig" to the W* macros (src/lxc/start.c, signal_handler).
	 */
	if ((status & 0xff) == 0x7f)
		return 128 + ((status >> 8) & 0x7f);
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	if (WIFSIGNALED(status))
		return 128 + WTERMSIG(status);
	return HELPER_FAILED;
}

static void open_report_fd(void)
{
	int flags = fcntl(REPORT_FD, F_GETFD);

	if (flags < 0)
		return;
	/* The container's processes must not inherit it. */
	fcntl(REPORT_FD, F_SETFD, flags | FD_CLOEXEC);
	report_ok = true;
}

/*
 * parse_uint parses all of s as an unsigned number in base 8, 10 or 16, at most max: no
 * sign, blank, prefix or trailing junk (strtoull would take " -1" as 2^64-1).
 */
static bool parse_uint(const char *s, unsigned base, uint64_t max, uint64_t *out)
{
	uint64_t v = 0;

	if (!s || !*s)
		return false;
	for (; *s; s++) {
		unsigned d;

		if (*s >= '0' && *s <= '9')
			d = (unsigned)(*s - '0');
		else if (*s >= 'a' && *s <= 'f')
			d = (unsigned)(*s - 'a') + 10;
		else if (*s >= 'A' && *s <= 'F')
			d = (unsigned)(*s - 'A') + 10;
		else
			return false;
		if (d >= base || v > (max - d) / base)
			return false;
		v = v * base + d;
	}
	*out = v;
	return true;
}

/* parse_int parses all of s as a decimal number in min..max (min <= 0 <= max). */
static bool parse_int(const char *s, long long min, long long max, long long *out)
{
	uint64_t v;

	if (s && *s == '-') {
		if (!parse_uint(s + 1, 10, (uint64_t)0 - (uint64_t)min, &v))
			return false;
		*out = v == 0 ? 0 : -(long long)(v - 1) - 1;
		return true;
	}
	if (!parse_uint(s, 10, (uint64_t)max, &v))
		return false;
	*out = (long long)v;
	return true;
}

/* parse_rlim parses a resource limit value: 0..2^64-1, "unlimited" or "-1" (both
 * RLIM_INFINITY). */
static bool parse_rlim(const char *s, rlim_t *out)
{
	uint64_t v;

	if (s && (strcmp(s, "unlimited") == 0 || strcmp(s, "-1") == 0)) {
		*out = RLIM_INFINITY;
		return true;
	}
	if (!parse_uint(s, 10, (uint64_t)(rlim_t)-1, &v))
		return false;
	*out = (rlim_t)v;
	return true;
}

/* close_fds closes fds lo..hi (inclusive). */
static void close_fds(unsigned lo, unsigned hi)
{
	struct rlimit rl;
	unsigned max = 1U << 20; /* the kernel's default nr_open */

	if (syscall(SYS_close_range, lo, hi, 0) == 0)
		return;
	/* close_range(2) is missing (Linux < 5.9): close them one by one. */
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_max < max)
		max = (unsigned)rl.rlim_max;
	for (unsigned fd = lo; fd <= hi && fd < max; fd++)
		close((int)fd);
}

/*
 * close_inherited closes every fd from 3 up but those in keep (ascending): the container's
 * processes must get only their stdio and what the helper passes on purpose, whatever the
 * shim's own parent left open without close-on-exec (exec.Cmd passes such fds on).
 */
static void close_inherited(const int *keep, size_t n)
{
	unsigned lo = STDERR_FILENO + 1;

	for (size_t i = 0; i < n; i++) {
		if (keep[i] < (int)lo)
			continue;
		if ((unsigned)keep[i] > lo)
			close_fds(lo, (unsigned)keep[i] - 1);
		lo = (unsigned)keep[i] + 1;
	}
	close_fds(lo, ~0U);
}

/* --- the spec record ----------------------------------------------------------------- */

#define SPEC_MAGIC "lxcri-start-spec-v1"
#define SPEC_END "end"
/* Far above what execve(2) could take (args and env are bounded by it anyway). */
#define SPEC_MAX (16 << 20)

struct spec {
	char *buf;
	size_t len;
	size_t off; /* the next key (spec_next) */
};

/*
 * spec_read reads the record from the fd named by fdarg to its end, closes the fd and
 * checks the record's frame: magic, every field terminated, KEY VALUE pairs, the end
 * marker last. spec_next cannot overrun once it passed.
 */
static void spec_read(struct spec *s, int fd)
{
	size_t cap = 0;
	char *err = NULL;

	memset(s, 0, sizeof(*s));
	for (;;) {
		ssize_t r;

		if (s->len == cap) {
			char *nb;

			if (cap > SPEC_MAX) {
				err = "record larger than " "16 MiB";
				goto out;
			}
			cap = cap ? cap * 2 : 4096;
			if (cap > SPEC_MAX + 1)
				cap = SPEC_MAX + 1;
			nb = realloc(s->buf, cap);
			if (!nb) {
				err = "out of memory";
				goto out;
			}
			s->buf = nb;
		}
		r = read(fd, s->buf + s->len, cap - s->len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			err = strerror(errno);
			goto out;
		}
		if (r == 0)
			break;
		s->len += (size_t)r;
	}
out:
	close(fd);
	if (err)
		fail("spec: read fd %d: %s", fd, err);
	if (s->len == 0)
		fail("spec: empty record (fd %d)", fd);
	if (s->buf[s->len - 1] != '\0')
		fail("spec: truncated record (its last field has no terminator)");
	if (strcmp(s->buf, SPEC_MAGIC) != 0)
		fail("spec: not a record (want magic %s)", SPEC_MAGIC);
	s->off = strlen(s->buf) + 1;
	for (size_t off = s->off;;) {
		const char *key;

		if (off >= s->len)
			fail("spec: truncated record (no end marker)");
		key = s->buf + off;
		off += strlen(key) + 1;
		if (strcmp(key, SPEC_END) == 0) {
			if (off != s->len)
				fail("spec: data after the end marker");
			break;
		}
		if (!*key)
			fail("spec: empty key");
		if (off >= s->len)
			fail("spec: truncated record (%s has no value)", key);
		off += strlen(s->buf + off) + 1;
	}
}

/*
 * open_spec takes the spec fd of the command line (after --spec-fd), closes every other
 * inherited fd but the report, console and gate fds, and reads the record.
 */
static void open_spec(struct spec *s, const char *fdarg)
{
	long long fd;
	int keep[4] = { REPORT_FD, CONSOLE_FD, GATE_FD, 0 };

	if (!parse_int(fdarg, 0, INT_MAX, &fd) || fd <= GATE_FD)
		fail("spec: invalid file descriptor %s (want a number above %d)", fdarg, GATE_FD);
	keep[3] = (int)fd;
	close_inherited(keep, 4);
	if (fcntl((int)fd, F_GETFD) < 0)
		fail("spec: fd %lld is not open", fd);
	spec_read(s, (int)fd);
}

/* spec_next returns the next KEY VALUE pair, false at the end marker. */
static bool spec_next(struct spec *s, const char **key, const char **val)
{
	*key = s->buf + s->off;
	if (strcmp(*key, SPEC_END) == 0)
		return false;
	*val = *key + strlen(*key) + 1;
	s->off = (size_t)(*val - s->buf) + strlen(*val) + 1;
	return true;
}

/* spec_count counts the pairs with key. */
static size_t spec_count(const struct spec *s, const char *key)
{
	struct spec it = *s;
	const char *k, *v;
	size_t n = 0;

	while (spec_next(&it, &k, &v))
		n += strcmp(k, key) == 0;
	return n;
}

/* spec_once fails when a key that may appear once is seen again (seen: its flag). */
static void spec_once(const char *key, bool *seen)
{
	if (*seen)
		fail("spec: %s given twice", key);
	*seen = true;
}

/* spec_env checks one environment entry: KEY=VALUE with a non-empty KEY (liblxc would
 * take a bare KEY to mean the host's value). */
static void spec_env(const char *v)
{
	const char *eq = strchr(v, '=');

	if (!eq || eq == v)
		fail("spec: invalid environment entry (want KEY=VALUE)");
}

static struct lxc_container *load(const char *name, const char *lxcpath)
{
	struct lxc_container *c = lxc_container_new(name, lxcpath);

	/*
	 * liblxc parses the configuration here and returns nothing when it refuses a line: the
	 * shim checks nothing itself (it links no liblxc), so this is where a configuration
	 * that liblxc does not accept fails Create.
	 */
	if (!c)
		fail_invalid("liblxc rejects the configuration %s/%s/config", lxcpath, name);
	if (!c->is_defined(c))
		fail("container %s is not defined in %s (no %s/%s/config)", name, lxcpath, lxcpath, name);
	return c;
}

/* --- start ------------------------------------------------------------------------- */

static char *shell_quote(const char *s)
{
	size_t n = 3;
	char *out, *p;

	for (const char *q = s; *q; q++)
		n += *q == '\'' ? 4 : 1;
	out = malloc(n);
	if (!out)
		return NULL;
	p = out;
	*p++ = '\'';
	for (const char *q = s; *q; q++) {
		if (*q == '\'') {
			memcpy(p, "'\\''", 4);
			p += 4;
		} else {
			*p++ = *q;
		}
	}
	*p++ = '\'';
	*p = '\0';
	return out;
}

static int do_start(int argc, char **argv)
{
	struct lxc_container *c;
	const char *name, *lxcpath, *key, *val;
	struct spec spec;
	char **args = NULL, **env;
	size_t nenv = 0, nargs = 0;
	uint64_t cap_inh = 0, v;
	bool set_inh = false, set_umask = false;
	int i;

	if (argc != 6 || strcmp(argv[4], "--spec-fd") != 0)
		fail("usage: lxcri-start start NAME LXCPATH --spec-fd FD");
	name = argv[2];
	lxcpath = argv[3];
	open_spec(&spec, argv[5]);
	env = calloc(spec_count(&spec, "env") + 1, sizeof(char *));
	args = calloc(spec_count(&spec, "arg") + 1, sizeof(char *));
	if (!env || !args)
		fail("out of memory");
	while (spec_next(&spec, &key, &val)) {
		if (strcmp(key, "umask") == 0) {
			spec_once(key, &set_umask);
			if (!parse_uint(val, 8, 0777, &v))
				fail("spec: invalid umask %s", val);
			umask((mode_t)v);
		} else if (strcmp(key, "env") == 0) {
			spec_env(val);
			env[nenv++] = (char *)val;
		} else if (strcmp(key, "cap-inheritable") == 0) {
			spec_once(key, &set_inh);
			if (!parse_uint(val, 16, UINT64_MAX, &cap_inh))
				fail("spec: invalid capability mask %s", val);
		} else if (strcmp(key, "arg") == 0) {
			args[nargs++] = (char *)val;
		} else {
			fail("spec: start: unknown key %s", key);
		}
	}

	c = load(name, lxcpath);
	if (c->is_running(c))
		fail("container %s is already running", name);

	/* The environment is exactly the record's: none from the configuration. */
	if (!c->clear_config_item(c, "lxc.environment"))
		fail("cannot clear lxc.environment");
	for (size_t k = 0; k < nenv; k++)
		if (!c->set_config_item(c, "lxc.environment", env[k]))
			fail("cannot set environment entry %zu (process.env)", k);

	if (set_inh) {
		/* The init inherits the inheritable set: liblxc does not touch it. */
		struct __user_cap_header_struct hdr = { .version = _LINUX_CAPABILITY_VERSION_3, .pid = 0 };
		struct __user_cap_data_struct data[2];

		if (syscall(SYS_capget, &hdr, data) < 0)
			fail("capget: %s", strerror(errno));
		data[0].inheritable = (uint32_t)cap_inh;
		data[1].inheritable = (uint32_t)(cap_inh >> 32);
		if (syscall(SYS_capset, &hdr, data) < 0)
			fail("set inheritable capabilities (process.capabilities.inheritable): %s", strerror(errno));
	}

	{
		char mpid[32];
		int flags = fcntl(GATE_FD, F_GETFD);

		snprintf(mpid, sizeof(mpid), "%d", getpid());
		setenv(MONITOR_PID_ENV, mpid, 1);
		if (flags >= 0) {
			char gate[64];

			fcntl(GATE_FD, F_SETFD, flags | FD_CLOEXEC);
			snprintf(gate, sizeof(gate), "/proc/%d/fd/%d", getpid(), GATE_FD);
			setenv(GATE_FILE_ENV, gate, 1);
		}
	}

	if (report_ok) {
		/*
		 * The container's init pid is known in this process (the monitor) only inside
		 * liblxc: it exports it as LXC_PID to the start-host hooks, which run after the
		 * init was cloned and before it execs. The hook writes it to our report fd
		 * through /proc, since the fd itself is close-on-exec.
		 */
		char self[PATH_MAX], pidfile[64], *quoted, *hook;
		ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);

		if (n < 0)
			fail("readlink /proc/self/exe: %s", strerror(errno));
		self[n] = '\0';
		snprintf(pidfile, sizeof(pidfile), "/proc/%d/fd/%d", getpid(), REPORT_FD);
		setenv(PID_FILE_ENV, pidfile, 1);
		quoted = shell_quote(self);
		if (!quoted || asprintf(&hook, "%s pidhook", quoted) < 0)
			fail("out of memory");
		if (!c->set_config_item(c, "lxc.hook.start-host", hook))
			fail("cannot set lxc.hook.start-host");
		free(hook);
		free(quoted);
	}

	if (!c->want_daemonize(c, false))
		fail("cannot run container %s in the foreground", name);

	if (!c->start(c, 0, nargs ? args : NULL)) {
		/*
		 * The container did not start, or its init failed before or at exec (error_num
		 * is then liblxc's placeholder 1, not a status).
		 */
		lxc_container_put(c);
		fail("failed to start container %s (see the lxc log)", name);
	}
	i = exit_status(c->error_num);
	lxc_container_put(c);
	return i;
}

/* write_pid writes the report line "pid PID" to path (the monitor's report fd). */
static int write_pid(const char *path, const char *pid)
{
	char buf[64];
	int fd, n, ret = 1;

	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0) {
		fprintf(stderr, "lxcri-start pidhook: open %s: %s\n", path, strerror(errno));
		return 1;
	}
	n = snprintf(buf, sizeof(buf), "pid %s\n", pid);
	if (n < 0 || n >= (int)sizeof(buf)) {
		fprintf(stderr, "lxcri-start pidhook: invalid pid %s\n", pid);
		goto out;
	}
	if (write(fd, buf, (size_t)n) != n) {
		fprintf(stderr, "lxcri-start pidhook: write %s: %s\n", path, strerror(errno));
		goto out;
	}
	ret = 0;
out:
	close(fd);
	return ret;
}

static int do_pidhook(void)
{
	const char *path = getenv(PID_FILE_ENV);
	const char *pid = getenv("LXC_PID");
	const char *gate = getenv(GATE_FILE_ENV);
	int gfd, ret = 1;
	ssize_t r;
	char c;

	if (!path || !pid)
		return 0;
	if (!gate)
		return write_pid(path, pid);
	/* Open the gate first: once the pid is out, the shim may close it. */
	gfd = open(gate, O_RDONLY | O_CLOEXEC);
	if (gfd < 0) {
		fprintf(stderr, "lxcri-start pidhook: open %s: %s\n", gate, strerror(errno));
		return 1;
	}
	if (write_pid(path, pid) != 0)
		goto out;
	do {
		r = read(gfd, &c, 1);
	} while (r < 0 && errno == EINTR);
	if (r != 1) {
		fprintf(stderr, "lxcri-start pidhook: start aborted\n");
		goto out;
	}
	ret = 0;
out:
	close(gfd);
	return ret;
}

/* --- exec -------------------------------------------------------------------------- */

#define MAX_RLIMITS 32

struct exec_payload {
	char **args;
	char **env;
	size_t nenv;
	const char *cwd;
	uid_t uid;
	gid_t gid;
	gid_t *groups;
	size_t ngroups;
	long long umask;
	bool tty;
	int console_sock; /* -1: use stdin as the terminal */
	bool no_new_privs;
	bool caps;
	uint64_t cap_bounding, cap_effective, cap_permitted, cap_inheritable, cap_ambient;
	int nrlimits;
	struct {
		int resource;
		struct rlimit lim;
	} rlimits[MAX_RLIMITS];
	const char *oom_score_adj;
};

static int last_cap(void)
{
	static int last = -1;
	FILE *f;

	if (last >= 0)
		return last;
	last = CAP_LAST_CAP;
	f = fopen("/proc/sys/kernel/cap_last_cap", "re");
	if (f) {
		if (fscanf(f, "%d", &last) != 1)
			last = CAP_LAST_CAP;
		fclose(f);
	}
	return last;
}

/* child_fail prints to the process's stderr (the only channel left) and returns 127. */
static int child_fail(const char *what, int err)
{
	report("error %s: %s", what, strerror(err));
	fprintf(stderr, "lxcri-start exec: %s: %s\n", what, strerror(err));
	fflush(stderr);
	return 127;
}

/* drop_bounding needs CAP_SETPCAP: it runs before the switch to the process's user. */
static int drop_bounding(struct exec_payload *p)
{
	int last = last_cap();

	for (int cap = 0; cap <= last; cap++) {
		if (p->cap_bounding & (1ULL << cap))
			continue;
		if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0 && errno != EINVAL)
			return child_fail("drop bounding capability (process.capabilities.bounding)", errno);
	}
	return 0;
}

static int apply_caps(struct exec_payload *p)
{
	struct __user_cap_header_struct hdr = { .version = _LINUX_CAPABILITY_VERSION_3, .pid = 0 };
	struct __user_cap_data_struct data[2];
	int last = last_cap();

	memset(data, 0, sizeof(data));
	data[0].effective = (uint32_t)p->cap_effective;
	data[1].effective = (uint32_t)(p->cap_effective >> 32);
	data[0].permitted = (uint32_t)p->cap_permitted;
	data[1].permitted = (uint32_t)(p->cap_permitted >> 32);
	data[0].inheritable = (uint32_t)p->cap_inheritable;
	data[1].inheritable = (uint32_t)(p->cap_inheritable >> 32);
	if (syscall(SYS_capset, &hdr, data) < 0)
		return child_fail("set capabilities (process.capabilities)", errno);
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
		return child_fail("clear ambient capabilities", errno);
	for (int cap = 0; cap <= last; cap++) {
		if (!(p->cap_ambient & (1ULL << cap)))
			continue;
		if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap, 0, 0) < 0)
			return child_fail("raise ambient capability (process.capabilities.ambient)", errno);
	}
	return 0;
}

static int send_fd(int sock, int fd)
{
	char data[] = "pty";
	char buf[CMSG_SPACE(sizeof(int))];
	struct iovec iov = { .iov_base = data, .iov_len = sizeof(data) - 1 };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = buf, .msg_controllen = sizeof(buf) };
	struct cmsghdr *c;

	memset(buf, 0, sizeof(buf));
	c = CMSG_FIRSTHDR(&msg);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c), &fd, sizeof(int));
	while (sendmsg(sock, &msg, MSG_NOSIGNAL) < 0) {
		if (errno != EINTR)
			return -1;
	}
	return 0;
}

/*
 * container_pty allocates a pty from the container's devpts (so that ttyname(3) works
 * inside), sends its master to the shim and makes the slave the process's stdio and
 * controlling terminal.
 */
static int container_pty(struct exec_payload *p)
{
	int ptx = -1, pty = -1, unlock = 0, ret;
	char ack;

	ptx = open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (ptx < 0) {
		ret = child_fail("open the container's /dev/ptmx", errno);
		goto out;
	}
	if (ioctl(ptx, TIOCSPTLCK, &unlock) < 0) {
		ret = child_fail("unlock pty", errno);
		goto out;
	}
	pty = ioctl(ptx, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (pty < 0) {
		ret = child_fail("open pty peer", errno);
		goto out;
	}
	if (p->uid != 0 && fchown(pty, p->uid, (gid_t)-1) < 0) {
		ret = child_fail("chown pty", errno);
		goto out;
	}
	if (send_fd(p->console_sock, ptx) < 0) {
		ret = child_fail("send the pty master", errno);
		goto out;
	}
	/* The shim sizes the terminal, then lets us go on. */
	while (read(p->console_sock, &ack, 1) < 0 && errno == EINTR)
		;
	setsid();
	for (int fd = 0; fd <= 2; fd++) {
		if (dup2(pty, fd) < 0) {
			ret = child_fail("dup pty", errno);
			goto out;
		}
	}
	if (ioctl(STDIN_FILENO, TIOCSCTTY, 0) < 0) {
		ret = child_fail("make the pty the controlling terminal", errno);
		goto out;
	}
	ret = 0;
out:
	if (ptx >= 0)
		close(ptx);
	if (pty > STDERR_FILENO)
		close(pty);
	close(p->console_sock);
	p->console_sock = -1;
	return ret;
}

/* exec_function runs inside the container, as root, after liblxc attached it. */
static int exec_function(void *payload)
{
	struct exec_payload *p = payload;
	int ret;

	for (int i = 0; i < p->nrlimits; i++)
		if (setrlimit(p->rlimits[i].resource, &p->rlimits[i].lim) < 0)
			return child_fail("setrlimit (process.rlimits)", errno);

	if (p->oom_score_adj) {
		int fd = open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC);
		ssize_t w;

		if (fd < 0)
			return child_fail("open /proc/self/oom_score_adj (process.oomScoreAdj)", errno);
		w = write(fd, p->oom_score_adj, strlen(p->oom_score_adj));
		ret = errno;
		close(fd);
		if (w < 0)
			return child_fail("write /proc/self/oom_score_adj (process.oomScoreAdj)", ret);
	}

	if (p->tty && p->console_sock >= 0) {
		ret = container_pty(p);
		if (ret)
			return ret;
	} else if (p->tty) {
		setsid();
		if (ioctl(STDIN_FILENO, TIOCSCTTY, 0) < 0)
			return child_fail("make stdin the controlling terminal", errno);
	}

	if (p->cwd && chdir(p->cwd) < 0)
		return child_fail(p->cwd, errno);

	if (p->umask >= 0)
		umask((mode_t)p->umask);

	/* user, groups, capabilities: as runc does (keep caps across setuid, then set them). */
	if (p->caps) {
		ret = drop_bounding(p);
		if (ret)
			return ret;
	}
	if (setgroups(p->ngroups, p->groups) < 0)
		return child_fail("setgroups (process.user.additionalGids)", errno);
	if (p->caps && prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0)
		return child_fail("prctl(PR_SET_KEEPCAPS)", errno);
	if (setresgid(p->gid, p->gid, p->gid) < 0)
		return child_fail("setgid (process.user.gid)", errno);
	if (setresuid(p->uid, p->uid, p->uid) < 0)
		return child_fail("setuid (process.user.uid)", errno);
	if (p->caps) {
		prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0);
		ret = apply_caps(p);
		if (ret)
			return ret;
	}
	if (p->no_new_privs && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return child_fail("prctl(PR_SET_NO_NEW_PRIVS)", errno);

	if (clearenv() != 0)
		return child_fail("clearenv", errno);
	for (size_t i = 0; i < p->nenv; i++)
		putenv(p->env[i]);

	execvp(p->args[0], p->args);
	ret = errno;
	report("error exec %s: %s", p->args[0], strerror(ret));
	fprintf(stderr, "lxcri-start exec: exec %s: %s\n", p->args[0], strerror(ret));
	fflush(stderr);
	return (ret == ENOENT || ret == ENOTDIR) ? 127 : 126;
}

static int do_exec(int argc, char **argv)
{
	struct lxc_container *c;
	const char *name, *lxcpath, *key, *val;
	struct exec_payload p;
	struct spec spec;
	lxc_attach_options_t opts = LXC_ATTACH_OPTIONS_DEFAULT;
	static const char *const cap_keys[5] = { "cap-bounding", "cap-effective", "cap-permitted",
						 "cap-inheritable", "cap-ambient" };
	bool seen_cwd = false, seen_uid = false, seen_gid = false, seen_umask = false;
	bool seen_tty = false, seen_nnp = false, seen_oom = false, seen_cap[5] = { false };
	size_t nargs = 0;
	pid_t pid;
	int status, ret, ncaps = 0;

	memset(&p, 0, sizeof(p));
	p.umask = -1;
	p.console_sock = -1;
	if (argc != 6 || strcmp(argv[4], "--spec-fd") != 0)
		fail("usage: lxcri-start exec NAME LXCPATH --spec-fd FD");
	name = argv[2];
	lxcpath = argv[3];
	open_spec(&spec, argv[5]);
	p.env = calloc(spec_count(&spec, "env") + 1, sizeof(char *));
	p.args = calloc(spec_count(&spec, "arg") + 1, sizeof(char *));
	p.groups = calloc(spec_count(&spec, "group") + 1, sizeof(gid_t));
	if (!p.env || !p.args || !p.groups)
		fail("out of memory");
	while (spec_next(&spec, &key, &val)) {
		uint64_t n;
		long long sn;
		int k;

		for (k = 0; k < 5 && strcmp(key, cap_keys[k]) != 0; k++)
			;
		if (k < 5) {
			uint64_t *sets[5] = { &p.cap_bounding, &p.cap_effective, &p.cap_permitted,
					      &p.cap_inheritable, &p.cap_ambient };

			spec_once(key, &seen_cap[k]);
			if (!parse_uint(val, 16, UINT64_MAX, sets[k]))
				fail("spec: invalid capability mask %s (%s)", val, key);
			ncaps++;
		} else if (strcmp(key, "arg") == 0) {
			p.args[nargs++] = (char *)val;
		} else if (strcmp(key, "env") == 0) {
			spec_env(val);
			p.env[p.nenv++] = (char *)val;
		} else if (strcmp(key, "cwd") == 0) {
			spec_once(key, &seen_cwd);
			p.cwd = val;
		} else if (strcmp(key, "uid") == 0) {
			spec_once(key, &seen_uid);
			if (!parse_uint(val, 10, UINT32_MAX - 1, &n))
				fail("spec: invalid uid %s", val);
			p.uid = (uid_t)n;
		} else if (strcmp(key, "gid") == 0) {
			spec_once(key, &seen_gid);
			if (!parse_uint(val, 10, UINT32_MAX - 1, &n))
				fail("spec: invalid gid %s", val);
			p.gid = (gid_t)n;
		} else if (strcmp(key, "group") == 0) {
			if (!parse_uint(val, 10, UINT32_MAX - 1, &n))
				fail("spec: invalid group %s", val);
			p.groups[p.ngroups++] = (gid_t)n;
		} else if (strcmp(key, "umask") == 0) {
			spec_once(key, &seen_umask);
			if (!parse_uint(val, 8, 0777, &n))
				fail("spec: invalid umask %s", val);
			p.umask = (long long)n;
		} else if (strcmp(key, "tty") == 0) {
			spec_once(key, &seen_tty);
			if (strcmp(val, "1") != 0)
				fail("spec: invalid tty %s (want 1)", val);
			p.tty = true;
		} else if (strcmp(key, "no-new-privs") == 0) {
			spec_once(key, &seen_nnp);
			if (strcmp(val, "1") != 0)
				fail("spec: invalid no-new-privs %s (want 1)", val);
			p.no_new_privs = true;
		} else if (strcmp(key, "rlimit") == 0) {
			char *dup, *s1, *s2;
			uint64_t res;

			if (p.nrlimits >= MAX_RLIMITS)
				fail("spec: more than %d rlimits", MAX_RLIMITS);
			dup = strdup(val);
			if (!dup)
				fail("out of memory");
			s1 = strchr(dup, ':');
			s2 = s1 ? strchr(s1 + 1, ':') : NULL;
			if (!s2)
				fail("spec: invalid rlimit %s (want RES:SOFT:HARD)", val);
			*s1++ = '\0';
			*s2++ = '\0';
			if (!parse_uint(dup, 10, RLIM_NLIMITS - 1, &res) ||
			    !parse_rlim(s1, &p.rlimits[p.nrlimits].lim.rlim_cur) ||
			    !parse_rlim(s2, &p.rlimits[p.nrlimits].lim.rlim_max))
				fail("spec: invalid rlimit %s (want RES:SOFT:HARD, values 0..2^64-1 or unlimited)", val);
			p.rlimits[p.nrlimits].resource = (int)res;
			p.nrlimits++;
			free(dup);
		} else if (strcmp(key, "oom-score-adj") == 0) {
			spec_once(key, &seen_oom);
			if (!parse_int(val, -1000, 1000, &sn))
				fail("spec: invalid oom_score_adj %s", val);
			p.oom_score_adj = val;
		} else {
			fail("spec: exec: unknown key %s", key);
		}
	}
	if (ncaps != 0 && ncaps != 5)
		fail("spec: exec: %d of the 5 capability sets given (all or none)", ncaps);
	p.caps = ncaps == 5;
	if (nargs == 0 || !p.args[0][0])
		fail("spec: exec: no command given");
	if (p.tty && fcntl(CONSOLE_FD, F_GETFD) >= 0) {
		fcntl(CONSOLE_FD, F_SETFD, FD_CLOEXEC);
		p.console_sock = CONSOLE_FD;
	}

	c = load(name, lxcpath);
	if (!c->is_running(c))
		fail("container %s is not running", name);

	/*
	 * liblxc attaches as root (uid/gid 0 of the container): the exec function switches to
	 * the process's user itself, so that it can keep the capabilities the spec asks for.
	 * The environment is cleared and set exactly by the exec function.
	 */
	opts.uid = 0;
	opts.gid = 0;
	opts.env_policy = LXC_ATTACH_CLEAR_ENV;
	opts.stdin_fd = STDIN_FILENO;
	opts.stdout_fd = STDOUT_FILENO;
	opts.stderr_fd = STDERR_FILENO;
	/* initial_cwd NULL would mean our (host) cwd: use / and chdir in the exec function. */
	opts.initial_cwd = "/";

	ret = c->attach(c, exec_function, &p, &opts, &pid);
	if (ret < 0 || pid <= 0)
		fail("failed to attach to container %s (see the lxc log)", name);
	report("pid %d", pid);
	if (report_ok)
		close(REPORT_FD);
	if (p.console_sock >= 0)
		close(p.console_sock);
	lxc_container_put(c);

	for (;;) {
		ret = waitpid(pid, &status, 0);
		if (ret == pid)
			return exit_status(status);
		if (ret < 0 && errno != EINTR)
			fail("waitpid %d: %s", pid, strerror(errno));
	}
}

/* --- devices ----------------------------------------------------------------------- */

static int open_in_root(int rootfd, const char *rel, int flags)
{
	struct open_how how = {
		.flags = (uint64_t)(flags | O_CLOEXEC),
		.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
	};

	while (*rel == '/')
		rel++;
	if (!*rel)
		rel = ".";
	return (int)syscall(SYS_openat2, rootfd, rel, &how, sizeof(how));
}

/* mkdir_in_root makes directory rel (and its parents) inside rootfd and opens it. */
static int mkdir_in_root(int rootfd, const char *rel)
{
	char buf[PATH_MAX];
	char *p;
	int fd;

	if (strlen(rel) >= sizeof(buf))
		return -ENAMETOOLONG;
	strcpy(buf, rel);
	for (p = buf; *p == '/'; p++)
		;
	for (;;) {
		char *slash = strchr(p, '/');
		char saved = 0;

		if (slash) {
			saved = *slash;
			*slash = '\0';
		}
		fd = open_in_root(rootfd, buf, O_PATH | O_DIRECTORY);
		if (fd < 0 && errno == ENOENT) {
			char *last = strrchr(buf, '/');
			int pfd;

			if (last && last != buf) {
				*last = '\0';
				pfd = open_in_root(rootfd, buf, O_PATH | O_DIRECTORY);
				*last = '/';
				if (pfd < 0)
					return -errno;
				if (mkdirat(pfd, last + 1, 0755) < 0 && errno != EEXIST) {
					int err = errno;

					close(pfd);
					return -err;
				}
				close(pfd);
			} else {
				const char *n = last ? last + 1 : buf;

				if (mkdirat(rootfd, n, 0755) < 0 && errno != EEXIST)
					return -errno;
			}
			fd = open_in_root(rootfd, buf, O_PATH | O_DIRECTORY);
		}
		if (fd < 0)
			return -errno;
		if (!slash)
			return fd;
		close(fd);
		*slash = saved;
		p = slash + 1;
	}
}

/* make_device makes one device node of a TYPE:MAJ:MIN:MODE:UID:GID:PATH spec (or "ptmx")
 * inside rootfd. Errors are printed; returns 0 or 1. */
static int make_device(int rootfd, const char *arg)
{
	char *spec = NULL, *dir = NULL, *base, *path, *f[6];
	uint64_t maj, min, mode, uid, gid;
	int dfd = -1, ret = 1, k;
	mode_t fmt;

	if (strcmp(arg, "ptmx") == 0) {
		dfd = mkdir_in_root(rootfd, "dev");
		if (dfd < 0) {
			fprintf(stderr, "lxcri-start devices: mkdir /dev: %s\n", strerror(-dfd));
			return 1;
		}
		unlinkat(dfd, "ptmx", 0);
		if (symlinkat("pts/ptmx", dfd, "ptmx") < 0) {
			fprintf(stderr, "lxcri-start devices: symlink /dev/ptmx: %s\n", strerror(errno));
			goto out;
		}
		ret = 0;
		goto out;
	}
	spec = strdup(arg);
	if (!spec) {
		fprintf(stderr, "lxcri-start devices: out of memory\n");
		goto out;
	}
	f[0] = spec;
	for (k = 1; k < 6; k++) {
		char *c = strchr(f[k - 1], ':');

		if (!c)
			goto invalid;
		*c = '\0';
		f[k] = c + 1;
	}
	path = strchr(f[5], ':');
	if (!path || strlen(f[0]) != 1)
		goto invalid;
	*path++ = '\0';
	if (!parse_uint(f[1], 10, UINT32_MAX, &maj) || !parse_uint(f[2], 10, UINT32_MAX, &min) ||
	    !parse_uint(f[3], 8, 07777, &mode) || !parse_uint(f[4], 10, UINT32_MAX - 1, &uid) ||
	    !parse_uint(f[5], 10, UINT32_MAX - 1, &gid) || path[0] != '/')
		goto invalid;
	switch (f[0][0]) {
	case 'c':
		fmt = S_IFCHR;
		break;
	case 'b':
		fmt = S_IFBLK;
		break;
	case 'p':
		fmt = S_IFIFO;
		break;
	default:
		goto invalid;
	}
	dir = strdup(path);
	if (!dir) {
		fprintf(stderr, "lxcri-start devices: out of memory\n");
		goto out;
	}
	base = strrchr(dir, '/');
	*base++ = '\0';
	dfd = *dir ? mkdir_in_root(rootfd, dir) : fcntl(rootfd, F_DUPFD_CLOEXEC, 0);
	if (dfd < 0) {
		fprintf(stderr, "lxcri-start devices: mkdir %s: %s\n", *dir ? dir : "/",
			strerror(dfd == -1 ? errno : -dfd));
		goto out;
	}
	if (unlinkat(dfd, base, 0) < 0 && errno != ENOENT) {
		fprintf(stderr, "lxcri-start devices: remove %s: %s\n", path, strerror(errno));
		goto out;
	}
	if (mknodat(dfd, base, fmt | (mode_t)mode, makedev(maj, min)) < 0) {
		fprintf(stderr, "lxcri-start devices: mknod %s: %s\n", path, strerror(errno));
		goto out;
	}
	if (fchownat(dfd, base, (uid_t)uid, (gid_t)gid, AT_SYMLINK_NOFOLLOW) < 0) {
		fprintf(stderr, "lxcri-start devices: chown %s: %s\n", path, strerror(errno));
		goto out;
	}
	if (fchmodat(dfd, base, (mode_t)mode, 0) < 0) {
		fprintf(stderr, "lxcri-start devices: chmod %s: %s\n", path, strerror(errno));
		goto out;
	}
	ret = 0;
	goto out;
invalid:
	fprintf(stderr, "lxcri-start devices: invalid spec %s\n", arg);
out:
	if (dfd >= 0)
		close(dfd);
	free(dir);
	free(spec);
	return ret;
}

static int do_devices(int argc, char **argv)
{
	const char *root = getenv("LXC_ROOTFS_MOUNT");
	int rootfd, ret = 0;

	if (!root)
		fail("devices: LXC_ROOTFS_MOUNT is not set (run as lxc.hook.autodev)");
	rootfd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (rootfd < 0)
		fail("devices: open %s: %s", root, strerror(errno));
	for (int i = 2; i < argc && ret == 0; i++)
		ret = make_device(rootfd, argv[i]);
	close(rootfd);
	return ret ? HELPER_FAILED : 0;
}

/* --- sysctl ------------------------------------------------------------------------ */

/* join_ns joins the namespace ns of process pid unless we are in it already. */
static int join_ns(const char *pid, const char *ns)
{
	char path[64];
	struct stat theirs, ours;
	int fd, ret = 0;

	snprintf(path, sizeof(path), "/proc/%s/ns/%s", pid, ns);
	if (stat(path, &theirs) < 0) {
		fprintf(stderr, "lxcri-start sysctl: stat %s: %s\n", path, strerror(errno));
		return 1;
	}
	{
		char self[64];

		snprintf(self, sizeof(self), "/proc/self/ns/%s", ns);
		if (stat(self, &ours) == 0 && ours.st_ino == theirs.st_ino && ours.st_dev == theirs.st_dev)
			return 0;
	}
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		fprintf(stderr, "lxcri-start sysctl: open %s: %s\n", path, strerror(errno));
		return 1;
	}
	if (setns(fd, 0) < 0) {
		fprintf(stderr, "lxcri-start sysctl: join %s: %s\n", path, strerror(errno));
		ret = 1;
	}
	close(fd);
	return ret;
}

/* write_sysctl writes one KEY=VALUE setting to /proc/sys. */
static int write_sysctl(const char *arg)
{
	char path[PATH_MAX];
	const char *eq = strchr(arg, '=');
	size_t n, len;
	ssize_t w;
	int fd, ret = 0;

	if (!eq || eq == arg || strstr(arg, "..") || arg[0] == '/') {
		fprintf(stderr, "lxcri-start sysctl: invalid setting %s\n", arg);
		return 1;
	}
	n = (size_t)(eq - arg);
	if (n + strlen("/proc/sys/") >= sizeof(path)) {
		fprintf(stderr, "lxcri-start sysctl: name too long\n");
		return 1;
	}
	strcpy(path, "/proc/sys/");
	for (size_t k = 0; k < n; k++)
		path[10 + k] = arg[k] == '.' ? '/' : arg[k];
	path[10 + n] = '\0';
	fd = open(path, O_WRONLY | O_TRUNC | O_CLOEXEC);
	if (fd < 0) {
		fprintf(stderr, "lxcri-start sysctl: open %s: %s\n", path, strerror(errno));
		return 1;
	}
	len = strlen(eq + 1);
	w = write(fd, eq + 1, len);
	if (w < 0 || (size_t)w != len) {
		fprintf(stderr, "lxcri-start sysctl: write %s to %s: %s\n", eq + 1, path,
			w < 0 ? strerror(errno) : "short write");
		ret = 1;
	}
	close(fd);
	return ret;
}

static int do_sysctl(int argc, char **argv)
{
	const char *pid = getenv("LXC_PID");
	const char *nss[] = { "net", "ipc", "uts" };

	if (!pid)
		fail("sysctl: LXC_PID is not set (run as lxc.hook.start-host)");
	for (size_t i = 0; i < sizeof(nss) / sizeof(nss[0]); i++)
		if (join_ns(pid, nss[i]) != 0)
			return HELPER_FAILED;
	for (int i = 2; i < argc; i++)
		if (write_sysctl(argv[i]) != 0)
			return HELPER_FAILED;
	return 0;
}

/* --- oci-hook ---------------------------------------------------------------------- */

/* init_host_pid finds the container init's host pid from a hook it ran (pre-pivot, /proc is
 * still the host's): the ancestor whose parent is the monitor. */
static long init_host_pid(void)
{
	const char *m = getenv(MONITOR_PID_ENV);
	long long monitor;
	char path[64] = "/proc/self/stat";

	if (!m || !parse_int(m, 1, INT_MAX, &monitor))
		return -1;
	for (int depth = 0; depth < 16; depth++) {
		char buf[1024], *p;
		long pid, ppid;
		FILE *f = fopen(path, "re");
		size_t n;

		if (!f)
			return -1;
		n = fread(buf, 1, sizeof(buf) - 1, f);
		fclose(f);
		buf[n] = '\0';
		pid = strtol(buf, NULL, 10);
		p = strrchr(buf, ')');
		if (!p || sscanf(p + 1, " %*c %ld", &ppid) != 1)
			return -1;
		if (ppid == monitor)
			return pid;
		snprintf(path, sizeof(path), "/proc/%ld/stat", ppid);
	}
	return -1;
}

/* read_all reads file path into a NUL-terminated buffer (*len bytes before the NUL). */
static char *read_all(const char *path, size_t max, size_t *len)
{
	char *buf = NULL, *nb;
	size_t cap = 0;
	int fd, err = 0;

	*len = 0;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		fail("oci-hook: open %s: %s", path, strerror(errno));
	for (;;) {
		ssize_t r;

		if (*len == cap) {
			if (cap >= max) {
				err = EFBIG;
				break;
			}
			cap = cap ? cap * 2 : 65536;
			if (cap > max)
				cap = max;
			nb = realloc(buf, cap + 1);
			if (!nb) {
				err = ENOMEM;
				break;
			}
			buf = nb;
		}
		r = read(fd, buf + *len, cap - *len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			err = errno;
			break;
		}
		if (r == 0)
			break;
		*len += (size_t)r;
	}
	close(fd);
	if (err) {
		free(buf);
		fail("oci-hook: read %s: %s", path, strerror(err));
	}
	if (!buf)
		fail("oci-hook: %s is empty", path);
	buf[*len] = '\0';
	return buf;
}

/*
 * hook_fail prints why an OCI hook failed and, when the hook runs for a start helper with
 * a report fd, reports it there as the start's error (liblxc logs a hook's output only as
 * INFO, and its own error just says that a hook failed). Returns 1.
 */
static int hook_fail(const char *fmt, ...)
{
	const char *path = getenv(PID_FILE_ENV);
	char buf[1024];
	va_list ap;
	int n, fd;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf) - 1, fmt, ap);
	va_end(ap);
	if (n < 0)
		return 1;
	if (n > (int)sizeof(buf) - 2)
		n = (int)sizeof(buf) - 2;
	for (int i = 0; i < n; i++)
		if (buf[i] == '\n')
			buf[i] = ' ';
	fprintf(stderr, "%s\n", buf);
	if (!path)
		return 1;
	fd = open(path, O_WRONLY | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0)
		return 1;
	buf[n++] = '\n';
	if (dprintf(fd, "error %.*s", n, buf) < 0)
		fprintf(stderr, "oci-hook: report to %s: %s\n", path, strerror(errno));
	close(fd);
	return 1;
}

/* wait_hook waits for the hook child (the leader of its own process group); after timeout
 * seconds (0: none) it kills the whole group, so that what the hook left running in the
 * background cannot hold liblxc's output pipe or outlive the container's start. */
static int wait_hook(pid_t child, long timeout, const char *path)
{
	struct timespec start, now, nap = { 0, 5 * 1000 * 1000 };
	int status;

	clock_gettime(CLOCK_MONOTONIC, &start);
	for (;;) {
		pid_t r = waitpid(child, &status, timeout > 0 ? WNOHANG : 0);

		if (r == child)
			break;
		if (r < 0 && errno != EINTR) {
			int err = errno;

			kill(-child, SIGKILL);
			return hook_fail("oci-hook: waitpid: %s", strerror(err));
		}
		if (timeout <= 0)
			continue;
		clock_gettime(CLOCK_MONOTONIC, &now);
		if ((now.tv_sec - start.tv_sec) * 1000000000LL + (now.tv_nsec - start.tv_nsec) >=
		    timeout * 1000000000LL) {
			if (kill(-child, SIGKILL) < 0)
				kill(child, SIGKILL);
			while (waitpid(child, &status, 0) < 0 && errno == EINTR)
				;
			return hook_fail("oci-hook: %s timed out after %lds", path, timeout);
		}
		nanosleep(&nap, NULL);
	}
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return 0;
	return hook_fail("oci-hook: %s failed with status %d", path, exit_status(status));
}

static int do_oci_hook(int argc, char **argv)
{
	char *buf, *p, *end, **args, **env, *state, *pidpos, *path;
	size_t len;
	long timeout, nargs, nenv, pid = -1;
	int pipefd[2];
	pid_t child;
	char pidstr[32], *newstate;
	const char *lxcpid = getenv("LXC_PID");

	if (argc != 3)
		fail("usage: lxcri-start oci-hook FILE");
	buf = read_all(argv[2], SPEC_MAX, &len);
	p = buf;
	end = buf + len;
#define NEXT(var)                                                         \
	do {                                                              \
		if (p >= end)                                             \
			fail("oci-hook: %s is truncated", argv[2]);       \
		var = p;                                                  \
		p += strlen(p) + 1;                                       \
	} while (0)
	{
		char *magic, *s;
		uint64_t v;

		NEXT(magic);
		if (strcmp(magic, "lxcri-hook-v1") != 0)
			fail("oci-hook: %s is no hook description", argv[2]);
		NEXT(path);
		NEXT(s);
		if (!parse_uint(s, 10, INT_MAX, &v))
			fail("oci-hook: bad timeout");
		timeout = (long)v;
		NEXT(s);
		if (!parse_uint(s, 10, 1 << 20, &v) || v < 1)
			fail("oci-hook: bad argument count");
		nargs = (long)v;
		args = calloc((size_t)nargs + 1, sizeof(char *));
		if (!args)
			fail("out of memory");
		for (long i = 0; i < nargs; i++)
			NEXT(args[i]);
		NEXT(s);
		if (!parse_uint(s, 10, 1 << 20, &v))
			fail("oci-hook: bad environment count");
		nenv = (long)v;
		env = calloc((size_t)nenv + 1, sizeof(char *));
		if (!env)
			fail("out of memory");
		for (long i = 0; i < nenv; i++)
			NEXT(env[i]);
		NEXT(state);
	}
#undef NEXT

	if (lxcpid) {
		long long v;

		if (parse_int(lxcpid, 1, INT_MAX, &v))
			pid = (long)v;
	} else {
		pid = init_host_pid();
	}
	snprintf(pidstr, sizeof(pidstr), "\"pid\":%ld", pid);
	pidpos = strstr(state, "\"pid\":-1");
	if (pidpos) {
		size_t pre = (size_t)(pidpos - state), oldlen = strlen("\"pid\":-1");

		newstate = malloc(strlen(state) + strlen(pidstr) + 1);
		if (!newstate)
			fail("out of memory");
		memcpy(newstate, state, pre);
		strcpy(newstate + pre, pidstr);
		strcat(newstate, pidpos + oldlen);
		state = newstate;
	}

	if (pipe2(pipefd, O_CLOEXEC) < 0)
		fail("oci-hook: pipe: %s", strerror(errno));
	child = fork();
	if (child < 0) {
		int err = errno;

		close(pipefd[0]);
		close(pipefd[1]);
		fail("oci-hook: fork: %s", strerror(err));
	}
	if (child == 0) {
		/* Its own process group: a timeout kills all the hook started. */
		setpgid(0, 0);
		if (dup2(pipefd[0], STDIN_FILENO) < 0)
			_exit(127);
		close_inherited(NULL, 0);
		execve(path, args, env);
		fprintf(stderr, "oci-hook: exec %s: %s\n", path, strerror(errno));
		_exit(127);
	}
	/* Also here: the group must exist before a timeout can kill it (EACCES once the
	 * child execed means it did it itself). */
	setpgid(child, child);
	close(pipefd[0]);
	signal(SIGPIPE, SIG_IGN);
	{
		size_t off = 0, n = strlen(state);

		while (off < n) {
			ssize_t w = write(pipefd[1], state + off, n - off);

			if (w < 0 && errno == EINTR)
				continue;
			if (w < 0)
				break; /* the hook need not read its stdin */
			off += (size_t)w;
		}
	}
	close(pipefd[1]);
	return wait_hook(child, timeout, path);
}

/* --- oom-count ---------------------------------------------------------------------- */

static int do_oom_count(int argc, char **argv)
{
	char buf[4096], tmp[PATH_MAX], *line;
	unsigned long long n = 0;
	int found = 0;
	ssize_t len;
	FILE *out;
	int fd;

	if (argc != 4) {
		fprintf(stderr, "usage: lxcri-start oom-count COUNTERS OUT\n");
		return 1;
	}
	fd = open(argv[2], O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? 0 : (fprintf(stderr, "lxcri-start oom-count: open %s: %s\n", argv[2], strerror(errno)), 1);
	len = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (len < 0) {
		fprintf(stderr, "lxcri-start oom-count: read %s: %s\n", argv[2], strerror(errno));
		return 1;
	}
	buf[len] = '\0';
	for (line = buf; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
		if (strncmp(line, "oom_kill ", 9) == 0) {
			n = strtoull(line + 9, NULL, 10);
			found = 1;
			break;
		}
	}
	if (!found)
		return 0;
	if (snprintf(tmp, sizeof(tmp), "%s.tmp", argv[3]) >= (int)sizeof(tmp)) {
		fprintf(stderr, "lxcri-start oom-count: path too long\n");
		return 1;
	}
	out = fopen(tmp, "we");
	if (!out || fprintf(out, "%llu\n", n) < 0 || fclose(out) != 0 || rename(tmp, argv[3]) < 0) {
		fprintf(stderr, "lxcri-start oom-count: write %s: %s\n", argv[3], strerror(errno));
		return 1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	setvbuf(stderr, NULL, _IONBF, 0);
	if (argc >= 2 && strcmp(argv[1], "pidhook") == 0)
		return do_pidhook();
	if (argc >= 2 && strcmp(argv[1], "devices") == 0)
		return do_devices(argc, argv);
	if (argc >= 2 && strcmp(argv[1], "oci-hook") == 0)
		return do_oci_hook(argc, argv);
	if (argc >= 2 && strcmp(argv[1], "sysctl") == 0)
		return do_sysctl(argc, argv);
	if (argc >= 2 && strcmp(argv[1], "oom-count") == 0)
		return do_oom_count(argc, argv);

	open_report_fd();
	if (argc >= 2 && strcmp(argv[1], "start") == 0)
		return do_start(argc, argv);
	if (argc >= 2 && strcmp(argv[1], "exec") == 0)
		return do_exec(argc, argv);
	fail("usage: lxcri-start start|exec NAME LXCPATH ...");
}
