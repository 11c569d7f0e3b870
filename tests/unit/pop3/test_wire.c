/*
 * test_wire.c: the stored-to-wire encoder against an independent,
 * byte-by-byte model of the definition in wire.h, over whole inputs and
 * every split into two and three chunks.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>

#include "pop3/wire.h"

/*
 * The model: split at LF, drop one CR before each LF, each line + CRLF,
 * a non-empty last line + CRLF, stuff '.', TOP budget.  Returns a malloc'd
 * string; *len_r its length; *octets_r the size without stuffing.
 */
static char *
model(const char *in, size_t len, bool stuff, uint64_t top, size_t *len_r,
    uint64_t *octets_r)
{
	char *out = malloc(len * 3 + 8);
	size_t o = 0, i = 0, start, stop;
	uint64_t octets = 0, left = top;
	bool in_body = false;

	assert_non_null(out);
	while (i < len) {
		bool has_lf, empty;
		const char *lf = memchr(in + i, '\n', len - i);

		start = i;
		if (lf != NULL) {
			has_lf = true;
			stop = (size_t)(lf - in);
			i = stop + 1;
			if (stop > start && in[stop - 1] == '\r')
				stop--;
		} else {
			has_lf = false;
			stop = len;
			i = len;
		}
		empty = stop == start;
		if (!has_lf && empty)
			break;
		if (stuff && !empty && in[start] == '.')
			out[o++] = '.';
		memcpy(out + o, in + start, stop - start);
		o += stop - start;
		out[o++] = '\r';
		out[o++] = '\n';
		octets += stop - start + 2;
		if (!in_body) {
			if (empty) {
				in_body = true;
				if (left == 0)
					break;
			}
		} else if (left != WIRE_ALL_LINES) {
			if (--left == 0)
				break;
		}
	}
	*len_r = o;
	*octets_r = octets;
	return out;
}

/* Encodes in with the given split points (sorted, each <= len). */
static char *
encode(const char *in, size_t len, bool stuff, uint64_t top,
    const size_t *cuts, size_t ncuts, size_t *len_r, uint64_t *octets_r,
    bool *clean_r)
{
	struct evbuffer *ev = evbuffer_new();
	struct wire_enc e;
	size_t prev = 0, k, n;
	char *out;

	assert_non_null(ev);
	wire_enc_init(&e, stuff, top);
	for (k = 0; k <= ncuts; k++) {
		size_t at = k < ncuts ? cuts[k] : len;

		assert_int_equal(wire_enc_feed(&e, (const uint8_t *)in + prev,
		    at - prev, ev), 0);
		prev = at;
	}
	assert_int_equal(wire_enc_finish(&e, ev), 0);
	n = evbuffer_get_length(ev);
	out = malloc(n + 1);
	assert_non_null(out);
	assert_int_equal(evbuffer_remove(ev, out, n), (int)n);
	evbuffer_free(ev);
	*len_r = n;
	*octets_r = e.octets;
	if (clean_r != NULL)
		*clean_r = e.all_clean;
	return out;
}

static void
check_one(const char *in, size_t len, bool stuff, uint64_t top,
    const size_t *cuts, size_t ncuts)
{
	size_t mlen, elen;
	uint64_t moct, eoct;
	char *m = model(in, len, stuff, top, &mlen, &moct);
	char *got = encode(in, len, stuff, top, cuts, ncuts, &elen, &eoct,
	    NULL);

	if (mlen != elen || memcmp(m, got, mlen) != 0 || moct != eoct) {
		fprintf(stderr, "mismatch: stuff=%d top=%llu ncuts=%zu"
		    " cuts=%zu,%zu len=%zu\n", stuff, (unsigned long long)top,
		    ncuts, ncuts > 0 ? cuts[0] : 0, ncuts > 1 ? cuts[1] : 0,
		    len);
		fail();
	}
	free(m);
	free(got);
}

/* Every input against the model at every split into 1, 2 and 3 chunks. */
static void
check_all_splits(const char *in, size_t len)
{
	static const uint64_t tops[] = { WIRE_ALL_LINES, 0, 1, 2, 5 };
	size_t a, b, t;
	int s;

	for (s = 0; s < 2; s++) {
		for (t = 0; t < sizeof(tops) / sizeof(tops[0]); t++) {
			check_one(in, len, s, tops[t], NULL, 0);
			for (a = 0; a <= len; a++) {
				size_t cuts[2] = { a, 0 };

				check_one(in, len, s, tops[t], cuts, 1);
				for (b = a; b <= len && len <= 40; b++) {
					cuts[1] = b;
					check_one(in, len, s, tops[t], cuts, 2);
				}
			}
		}
	}
}

static const char *const samples[] = {
	"",
	"\n",
	"\r\n",
	"\r",
	"\r\r\n",
	"a",
	"a\r",
	"a\n",
	"a\r\n",
	"From: a\nSubject: b\n\nbody 1\nbody 2\n",
	"From: a\r\nSubject: b\r\n\r\nbody 1\r\nbody 2\r\n",
	"From: a\r\n\r\n.dot\r\n..two\r\n.\r\nend",
	"h: 1\n\n.\n.x\nline\r\nlast",
	"no blank line\nat all\r\n.still header\n",
	"x\r\ry\r\n\r\r\n\n\r\n",
	"\n\n\n\n",
	".",
	".\r",
	"\r.\n.\r\n",
	"h\n\r\n\r\nb\rc\n",
	"mixed\r\nlf\nend\r",
};

static void
test_model_all_splits(void **state)
{
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(samples) / sizeof(samples[0]); i++)
		check_all_splits(samples[i], strlen(samples[i]));
}

/* Random inputs over a small alphabet that hits every case often. */
static void
test_model_random(void **state)
{
	static const char alpha[] = "\r\n.a\n\r";
	char in[64];
	unsigned int seed = 12345;
	int round;
	size_t i, len;

	(void)state;
	for (round = 0; round < 3000; round++) {
		seed = seed * 1103515245u + 12345u;
		len = (seed >> 16) % sizeof(in);
		for (i = 0; i < len; i++) {
			seed = seed * 1103515245u + 12345u;
			in[i] = alpha[(seed >> 16) % (sizeof(alpha) - 1)];
		}
		for (i = 0; i <= len; i++) {
			size_t cut = i;

			check_one(in, len, true, WIRE_ALL_LINES, &cut, 1);
			check_one(in, len, true, (seed >> 8) % 4, &cut, 1);
		}
	}
}

/*
 * Random messages of realistic lines (0 to 99 octets, mostly letters),
 * so that runs of 16 and more octets, the unit of RETR's one-pass copy,
 * meet LF, CRLF, lone CRs and leading dots at every offset, and chunk
 * edges fall inside and between them.
 */
static void
test_model_long_lines(void **state)
{
	char in[2048];
	unsigned int seed = 777;
	int round;
	size_t i, len;

	(void)state;
	for (round = 0; round < 400; round++) {
		len = 0;
		seed = seed * 1103515245u + 12345u;
		while (len < sizeof(in) - 200 && (seed >> 16) % 40 != 0) {
			size_t n, j;

			seed = seed * 1103515245u + 12345u;
			n = (seed >> 16) % 100;
			for (j = 0; j < n; j++) {
				unsigned int r;

				seed = seed * 1103515245u + 12345u;
				r = (seed >> 16) % 64;
				in[len++] = r == 0 ? '\r' : r == 1 && j == 0 ?
				    '.' : (char)('a' + r % 26);
			}
			seed = seed * 1103515245u + 12345u;
			switch ((seed >> 16) % 6) {
			case 0:
				in[len++] = '\r';
				in[len++] = '\n';
				break;
			case 1:
				in[len++] = '\r';
				break;
			case 2:
				break;
			default:
				in[len++] = '\n';
				break;
			}
		}
		check_one(in, len, true, WIRE_ALL_LINES, NULL, 0);
		for (i = 0; i < 24; i++) {
			size_t cuts[2];

			seed = seed * 1103515245u + 12345u;
			cuts[0] = (seed >> 8) % (len + 1);
			seed = seed * 1103515245u + 12345u;
			cuts[1] = cuts[0] + (seed >> 8) % (len - cuts[0] + 1);
			check_one(in, len, true, WIRE_ALL_LINES, cuts, 2);
			check_one(in, len, false, WIRE_ALL_LINES, cuts, 1);
		}
	}
}

static void
expect(const char *in, bool stuff, uint64_t top, const char *want)
{
	size_t n;
	uint64_t oct;
	char *got = encode(in, strlen(in), stuff, top, NULL, 0, &n, &oct,
	    NULL);

	assert_int_equal(n, strlen(want));
	assert_memory_equal(got, want, n);
	free(got);
}

static void
test_endings(void **state)
{
	(void)state;
	expect("a\nb\n", true, WIRE_ALL_LINES, "a\r\nb\r\n");
	expect("a\r\nb\r\n", true, WIRE_ALL_LINES, "a\r\nb\r\n");
	expect("a\nb", true, WIRE_ALL_LINES, "a\r\nb\r\n");
	expect("", true, WIRE_ALL_LINES, "");
	expect("\n", true, WIRE_ALL_LINES, "\r\n");
	/* A lone CR is an ordinary octet, also at the very end. */
	expect("a\rb\n", true, WIRE_ALL_LINES, "a\rb\r\n");
	expect("a\r", true, WIRE_ALL_LINES, "a\r\r\n");
	expect("a\r\r\n", true, WIRE_ALL_LINES, "a\r\r\n");
	expect("a\n\r", true, WIRE_ALL_LINES, "a\r\n\r\r\n");
}

static void
test_stuffing(void **state)
{
	(void)state;
	expect(".\n..x\n.", true, WIRE_ALL_LINES, "..\r\n...x\r\n..\r\n");
	expect(".\n..x\n.", false, WIRE_ALL_LINES, ".\r\n..x\r\n.\r\n");
	expect("a.\n b.\n\r.\n", true, WIRE_ALL_LINES, "a.\r\n b.\r\n\r.\r\n");
}

static void
test_top(void **state)
{
	const char *m = "H: 1\nH: 2\n\nb1\nb2\nb3\n";

	(void)state;
	expect(m, true, 0, "H: 1\r\nH: 2\r\n\r\n");
	expect(m, true, 1, "H: 1\r\nH: 2\r\n\r\nb1\r\n");
	expect(m, true, 2, "H: 1\r\nH: 2\r\n\r\nb1\r\nb2\r\n");
	expect(m, true, 3, "H: 1\r\nH: 2\r\n\r\nb1\r\nb2\r\nb3\r\n");
	expect(m, true, 100, "H: 1\r\nH: 2\r\n\r\nb1\r\nb2\r\nb3\r\n");
	/* No empty line: all header, whatever n is. */
	expect("H: 1\nH: 2\nx", true, 0, "H: 1\r\nH: 2\r\nx\r\n");
	/* CRLF blank line; last body line without LF. */
	expect("H\r\n\r\n.b\r\nc", true, 5, "H\r\n\r\n..b\r\nc\r\n");
	/* The empty line after the header is not a body line. */
	expect("H\n\n\n\nx\n", true, 2, "H\r\n\r\n\r\n\r\n");
}

static void
test_done_flag(void **state)
{
	struct wire_enc e;
	struct evbuffer *ev = evbuffer_new();
	const char *m = "H\n\nb1\nb2\n";

	(void)state;
	wire_enc_init(&e, true, 1);
	assert_false(wire_enc_done(&e));
	assert_int_equal(wire_enc_feed(&e, (const uint8_t *)m, strlen(m), ev),
	    0);
	assert_true(wire_enc_done(&e));
	/* Further input is ignored. */
	assert_int_equal(wire_enc_feed(&e, (const uint8_t *)"zz\n", 3, ev), 0);
	assert_int_equal(wire_enc_finish(&e, ev), 0);
	assert_int_equal(evbuffer_get_length(ev), strlen("H\r\n\r\nb1\r\n"));
	evbuffer_free(ev);
}

/* Size == wire length minus the stuffing dots, and clean as defined. */
static void
test_size_and_clean(void **state)
{
	static const struct {
		const char	*in;
		uint64_t	 size;
		bool		 clean;
	} c[] = {
		{ "", 0, true },
		{ "\r\n", 2, true },
		{ "\n", 2, false },
		{ "a\r\nb\r\n", 6, true },
		{ "a\r\nb", 6, false },
		{ "a\r\nb\r", 7, false },
		{ "a\rb\r\n", 5, true },
		{ "a\r\r\n", 4, true },
		{ ".a\r\n", 4, false },
		{ "a\r\n.\r\n", 6, false },
		{ "a\r\n\r\n\r\n", 7, true },
		{ "a\nb\r\n", 6, false },
	};
	size_t i, n;
	uint64_t oct;
	bool clean;

	(void)state;
	for (i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
		char *got;
		size_t dots = 0, k;

		assert_int_equal(wire_size((const uint8_t *)c[i].in,
		    strlen(c[i].in), &clean), c[i].size);
		assert_int_equal(clean, c[i].clean);
		got = encode(c[i].in, strlen(c[i].in), true, WIRE_ALL_LINES,
		    NULL, 0, &n, &oct, NULL);
		for (k = 0; k < n; k++)
			if (got[k] == '.' && (k == 0 || got[k - 1] == '\n'))
				dots++;
		assert_int_equal(oct, n - dots);
		assert_int_equal(oct, c[i].size);
		free(got);
	}
	assert_int_equal(wire_size((const uint8_t *)"x\n", 2, NULL), 3);
}

/* The clean flag holds at every split too (CR at a chunk boundary). */
static void
test_clean_split(void **state)
{
	const char *in = "a\r\nb\rc\r\n\r\n";
	size_t len = strlen(in), a, n;
	uint64_t oct;
	bool clean;

	(void)state;
	for (a = 0; a <= len; a++) {
		char *got = encode(in, len, true, WIRE_ALL_LINES, &a, 1, &n,
		    &oct, &clean);

		assert_true(clean);
		assert_int_equal(n, len);
		assert_memory_equal(got, in, len);
		free(got);
	}
}

static void
test_size_fd(void **state)
{
	char path[] = "/tmp/test_wire.XXXXXX";
	size_t len = 300000, i;
	uint8_t *data = malloc(len);
	uint64_t size, stored;
	bool clean, clean2;
	int fd;

	(void)state;
	assert_non_null(data);
	for (i = 0; i < len; i++)
		data[i] = (i % 71 == 70) ? '\n' : (i % 97 == 0 ? '\r' :
		    (uint8_t)('a' + i % 26));
	fd = mkstemp(path);
	assert_true(fd != -1);
	assert_int_equal(write(fd, data, len), (ssize_t)len);
	/* The file offset does not matter: reading starts at 0. */
	assert_int_equal(wire_size_fd(fd, &size, &stored, &clean), 0);
	assert_int_equal(stored, len);
	assert_int_equal(size, wire_size(data, len, &clean2));
	assert_int_equal(clean, clean2);
	close(fd);
	unlink(path);
	free(data);
}

/* A large CRLF message goes out unchanged, whatever the chunking. */
static void
test_large_clean(void **state)
{
	size_t len = 1 << 20, i, n;
	char *in = malloc(len), *got;
	uint64_t oct;
	bool clean;
	size_t cuts[3] = { 65536, 65537, 700001 };

	(void)state;
	assert_non_null(in);
	for (i = 0; i < len; i++)
		in[i] = (char)('A' + i % 50);
	for (i = 78; i + 1 < len; i += 80) {
		in[i] = '\r';
		in[i + 1] = '\n';
	}
	in[len - 2] = '\r';
	in[len - 1] = '\n';
	got = encode(in, len, true, WIRE_ALL_LINES, cuts, 3, &n, &oct, &clean);
	assert_true(clean);
	assert_int_equal(n, len);
	assert_int_equal(oct, len);
	assert_memory_equal(got, in, len);
	free(got);
	free(in);
}

/* The sendfile form: CRLF throughout, with the lines that start with
 * '.' listed; anything else is refused. */
static void
test_dot_lines(void **state)
{
	static const struct {
		const char	*in;
		long		 want;
		uint64_t	 at[3];
	} c[] = {
		{ "", 0, { 0 } },
		{ "a\r\n", 0, { 0 } },
		{ ".\r\n", 1, { 0 } },
		{ "a\r\n.b\r\n\r\n..\r\n", 2, { 3, 9 } },
		{ "x.\r\n a.\r\n", 0, { 0 } },
		{ "a\rb\r\n", 0, { 0 } },		/* a lone CR is an octet */
		{ "a\n", -1, { 0 } },		/* bare LF */
		{ "a\r\nb\n", -1, { 0 } },
		{ "\n", -1, { 0 } },
		{ "a\r\nb", -1, { 0 } },		/* last line unfinished */
		{ "a\r\nb\r", -1, { 0 } },
		{ ".1\r\n.2\r\n.3\r\n", 3, { 0, 4, 8 } },
		{ ".1\r\n.2\r\n.3\r\n.4\r\n", -1, { 0 } },	/* over max */
	};
	uint64_t at[3];
	size_t i;
	long j, n;

	(void)state;
	for (i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
		n = wire_dot_lines((const uint8_t *)c[i].in, strlen(c[i].in),
		    at, 3);
		assert_int_equal(n, c[i].want);
		for (j = 0; j < n; j++)
			assert_int_equal(at[j], c[i].at[j]);
		if (n >= 0)	/* that form is its own wire size */
			assert_int_equal(wire_size((const uint8_t *)c[i].in,
			    strlen(c[i].in), NULL), strlen(c[i].in));
	}
}

/* Fed in two pieces cut anywhere, wire_dots finds what it finds in one:
 * the CR of a CRLF and the '.' of a line may each sit at a cut. */
static void
test_dot_lines_split(void **state)
{
	static const char *const in[] = {
		"S: x\r\n\r\n.a\r\nb\r\n..\r\n\r\n.\r\n",
		"S: x\r\n\r\n.a\r\nb\n.\r\n",
		"\r\n.\r\n\r\r\n.x\ry\r\n",
		".\r\n.\r\n.\r\n",
		"a\r\nb",
	};
	uint64_t whole[8], parts[8];
	struct wire_dots d;
	size_t i, cut, len;
	long n, m, j;

	(void)state;
	for (i = 0; i < sizeof(in) / sizeof(in[0]); i++) {
		len = strlen(in[i]);
		n = wire_dot_lines((const uint8_t *)in[i], len, whole, 8);
		for (cut = 0; cut <= len; cut++) {
			wire_dots_init(&d, parts, 8);
			wire_dots_feed(&d, (const uint8_t *)in[i], cut);
			wire_dots_feed(&d, (const uint8_t *)in[i] + cut,
			    len - cut);
			m = wire_dots_end(&d);
			assert_int_equal(m, n);
			for (j = 0; j < n; j++)
				assert_int_equal(parts[j], whole[j]);
		}
	}
	/* The first three: 3 such lines, not that form (a bare LF), 2. */
	assert_int_equal(wire_dot_lines((const uint8_t *)in[0],
	    strlen(in[0]), whole, 8), 3);
	assert_int_equal(wire_dot_lines((const uint8_t *)in[1],
	    strlen(in[1]), whole, 8), -1);
	assert_int_equal(wire_dot_lines((const uint8_t *)in[2],
	    strlen(in[2]), whole, 8), 2);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_endings),
		cmocka_unit_test(test_stuffing),
		cmocka_unit_test(test_top),
		cmocka_unit_test(test_done_flag),
		cmocka_unit_test(test_size_and_clean),
		cmocka_unit_test(test_clean_split),
		cmocka_unit_test(test_size_fd),
		cmocka_unit_test(test_large_clean),
		cmocka_unit_test(test_dot_lines),
		cmocka_unit_test(test_dot_lines_split),
		cmocka_unit_test(test_model_all_splits),
		cmocka_unit_test(test_model_random),
		cmocka_unit_test(test_model_long_lines),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
