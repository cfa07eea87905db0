/*
 * unit.h - the whole C unit-test framework: TEST(name) { CHECK(...); }
 * and UNIT_MAIN(). Each test prints "ok NAME" or "not ok NAME"; spec/run.py
 * counts those lines.
 */
#ifndef MXGATE_UNIT_H
#define MXGATE_UNIT_H
#include <stdio.h>
#include <string.h>

struct unit_test { const char *name; void (*fn)(int *failed); };
#define UNIT_MAX 256
static struct unit_test unit_tests[UNIT_MAX];
static int unit_ntests;

#define TEST(n) \
	static void test_##n(int *unit_failed); \
	__attribute__((constructor)) static void reg_##n(void) { \
		unit_tests[unit_ntests].name = #n; unit_tests[unit_ntests++].fn = test_##n; } \
	static void test_##n(int *unit_failed)

#define CHECK(cond) do { if (!(cond)) { \
	fprintf(stderr, "  %s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #cond); \
	*unit_failed = 1; return; } } while (0)
#define CHECK_STR(a, b) do { const char *_a = (a), *_b = (b); \
	if (!_a || !_b || strcmp(_a, _b) != 0) { \
	fprintf(stderr, "  %s:%d: \"%s\" != \"%s\"\n", __FILE__, __LINE__, _a ? _a : "(null)", _b ? _b : "(null)"); \
	*unit_failed = 1; return; } } while (0)
#define CHECK_INT(a, b) do { long long _a = (a), _b = (b); if (_a != _b) { \
	fprintf(stderr, "  %s:%d: %s == %lld, expected %lld\n", __FILE__, __LINE__, #a, _a, _b); \
	*unit_failed = 1; return; } } while (0)

/* A test that does not apply to this run: "skip NAME: why". */
#define UNIT_SKIP(why) do { fprintf(stderr, "  skipped: %s\n", why); \
	*unit_failed = -1; return; } while (0)

/* init runs first (e.g. reads the environment that parametrises a run). */
#define UNIT_MAIN_INIT(init) int main(int argc, char **argv) { \
	int bad = 0; \
	init; \
	for (int i = 0; i < unit_ntests; i++) { \
		if (argc > 1 && strcmp(argv[1], unit_tests[i].name) != 0) continue; \
		int f = 0; unit_tests[i].fn(&f); \
		printf("%s %s\n", f > 0 ? "not ok" : f < 0 ? "skip" : "ok", unit_tests[i].name); \
		fflush(stdout); bad |= f > 0; } \
	return bad; }
#define UNIT_MAIN() UNIT_MAIN_INIT((void)0)
#endif
