/* test_assets.c - the dashboard's file server (assets.h) on a table of its
 * own: which encoding a client gets, when a 304 is due, what a 404 is, and
 * the checks of the --dashboard-* flags. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "assets.h"

static const unsigned char page[] = "<!doctype html><p>hello hello hello hello</p>";
static const unsigned char page_gz[] = "GZ";          /* smaller: served when accepted */
static const unsigned char tiny[] = "x";
static const unsigned char tiny_gz[] = "gzip copy larger than the file";
static const asset_file files[] = {
	{ "index.html", "text/html; charset=utf-8", "\"sha256-aa\"", "\"sha256-aa-gz\"",
	  page, sizeof page - 1, page_gz, sizeof page_gz - 1 },
	{ "t.txt", "text/plain; charset=utf-8", "\"sha256-bb\"", "\"sha256-bb-gz\"",
	  tiny, sizeof tiny - 1, tiny_gz, sizeof tiny_gz - 1 },
};
static const asset_table table = { files, 2, "index.html" };

#define S(x) x, strlen(x)

static void test_accepts_gzip(void **state)
{
	assert_false(assets_accepts_gzip(NULL, 0));
	assert_true(assets_accepts_gzip(S("gzip")));
	assert_true(assets_accepts_gzip(S("deflate, GZIP;q=0.5, br")));
	assert_true(assets_accepts_gzip(S("x-gzip")));
	assert_true(assets_accepts_gzip(S("*")));
	assert_true(assets_accepts_gzip(S("gzip ; q=1.000")));
	assert_false(assets_accepts_gzip(S("")));
	assert_false(assets_accepts_gzip(S("identity")));
	assert_false(assets_accepts_gzip(S("br, deflate")));
	assert_false(assets_accepts_gzip(S("gzip;q=0")));
	assert_false(assets_accepts_gzip(S("gzip;q=0.000")));
	assert_false(assets_accepts_gzip(S("gzips")));
	/* a coding named outright wins over "*" either way */
	assert_false(assets_accepts_gzip(S("*, gzip;q=0")));
	assert_true(assets_accepts_gzip(S("*;q=0, gzip")));
	/* a malformed q accepts nothing rather than something */
	assert_false(assets_accepts_gzip(S("gzip;q=2")));
	assert_false(assets_accepts_gzip(S("gzip;q=abc")));
}

static void test_etag_matches(void **state)
{
	assert_true(assets_etag_matches(S("\"sha256-aa\""), "\"sha256-aa\""));
	assert_true(assets_etag_matches(S("\"x\", W/\"sha256-aa\""), "\"sha256-aa\""));
	assert_true(assets_etag_matches(S("*"), "\"sha256-aa\""));
	assert_false(assets_etag_matches(NULL, 0, "\"sha256-aa\""));
	assert_false(assets_etag_matches(S("\"sha256-a\""), "\"sha256-aa\""));
	assert_false(assets_etag_matches(S("\"sha256-aa-gz\""), "\"sha256-aa\""));
	assert_false(assets_etag_matches(S("sha256-aa"), "\"sha256-aa\""));
	assert_false(assets_etag_matches(S("\"sha256-aa"), "\"sha256-aa\""));
}

static void test_respond(void **state)
{
	asset_response r;
	/* the index by default, identity without Accept-Encoding */
	assets_respond(&table, "", NULL, 0, NULL, 0, &r);
	assert_int_equal(r.status, 200);
	assert_ptr_equal(r.body, page);
	assert_int_equal(r.len, sizeof page - 1);
	assert_string_equal(r.ctype, "text/html; charset=utf-8");
	assert_non_null(strstr(r.headers, "ETag: \"sha256-aa\"\r\n"));
	assert_non_null(strstr(r.headers, "Vary: Accept-Encoding\r\n"));
	assert_non_null(strstr(r.headers, "Content-Security-Policy: default-src 'self';"));
	assert_null(strstr(r.headers, "Content-Encoding"));
	/* gzip when accepted, with its own tag */
	assets_respond(&table, "index.html", NULL, 0, S("br, gzip"), &r);
	assert_int_equal(r.status, 200);
	assert_ptr_equal(r.body, page_gz);
	assert_non_null(strstr(r.headers, "Content-Encoding: gzip\r\n"));
	assert_non_null(strstr(r.headers, "ETag: \"sha256-aa-gz\"\r\n"));
	/* not when the copy is larger */
	assets_respond(&table, "t.txt", NULL, 0, S("gzip"), &r);
	assert_ptr_equal(r.body, tiny);
	assert_null(strstr(r.headers, "Content-Encoding"));
	/* 304 for either representation's tag, with the tag of what would be sent */
	assets_respond(&table, "index.html", S("\"sha256-aa\""), S("gzip"), &r);
	assert_int_equal(r.status, 304);
	assert_null(r.body);
	assert_null(r.ctype);
	assert_non_null(strstr(r.headers, "ETag: \"sha256-aa-gz\"\r\n"));
	assert_null(strstr(r.headers, "Content-Encoding"));
	assets_respond(&table, "index.html", S("\"sha256-aa-gz\""), NULL, 0, &r);
	assert_int_equal(r.status, 304);
	/* another file's tag is no match */
	assets_respond(&table, "index.html", S("\"sha256-bb\""), NULL, 0, &r);
	assert_int_equal(r.status, 200);
	/* unknown names, and no table at all */
	assets_respond(&table, "app.js", NULL, 0, NULL, 0, &r);
	assert_int_equal(r.status, 404);
	assert_null(r.body);
	assets_respond(&table, "../index.html", NULL, 0, NULL, 0, &r);
	assert_int_equal(r.status, 404);
	assets_respond(NULL, "", NULL, 0, NULL, 0, &r);
	assert_int_equal(r.status, 404);
}

static void test_time_zone(void **state)
{
	char err[256];
	const char *good[] = { "Europe/London", "UTC", "Etc/GMT+1", "Etc/GMT-14",
	                       "America/Argentina/Buenos_Aires", "GB-Eire" };
	for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
		assert_int_equal(assets_check_time_zone(good[i], err, sizeof err), 0);
	const char *bad[] = { "", "/etc/passwd", "Europe//London", "Europe/", "-x", "Europe/Lon don",
	                      "Europe/../x", "Europe/London\"", "Ä",
	                      "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" };
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		assert_int_equal(assets_check_time_zone(bad[i], err, sizeof err), -1);
	assets_check_time_zone("Europe/Lon don", err, sizeof err);
	assert_string_equal(err, "--dashboard-time-zone 'Europe/Lon don' is not an IANA time zone "
	                    "name such as Europe/London or UTC: only letters, digits and _ + / - "
	                    "are allowed");
}

static void test_locale(void **state)
{
	char err[256];
	const char *good[] = { "en-GB", "en", "de-CH-1996", "zh-Hant-TW", "cy-GB", "es-419" };
	for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
		assert_int_equal(assets_check_locale(good[i], err, sizeof err), 0);
	const char *bad[] = { "", "e", "en_GB", "en--GB", "en-", "-en", "1a-GB", "en-GB\"",
	                      "en-abcdefghi", "en-GB-aaaaaaaa-bbbbbbbb-cccccccc-ddd" };
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		assert_int_equal(assets_check_locale(bad[i], err, sizeof err), -1);
	assets_check_locale("en_GB", err, sizeof err);
	assert_string_equal(err, "--dashboard-locale 'en_GB' is not a BCP 47 language tag such as "
	                    "en-GB: only letters, digits and hyphens are allowed");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_accepts_gzip),
		cmocka_unit_test(test_etag_matches),
		cmocka_unit_test(test_respond),
		cmocka_unit_test(test_time_zone),
		cmocka_unit_test(test_locale),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
