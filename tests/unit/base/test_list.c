/* test_list.c - the intrusive lists every connection list is made of:
 * pushes come first, an object unlinked from the front, the middle or the
 * end leaves the others in order, linked both ways. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "list.h"

typedef struct node {
	int id;
	struct node *prev, *next;
} node;

/* The ids from <head> forward, checking each back link, as a number
 * (1, 2, 3 -> 123). */
static int ids(node *head)
{
	int v = 0;
	node *prev = NULL;
	for (node *n = head; n; prev = n, n = n->next) {
		assert_ptr_equal(n->prev, prev);
		v = v * 10 + n->id;
	}
	return v;
}

static void test_push_puts_first(void **state)
{
	node a = { 1, NULL, NULL }, b = { 2, NULL, NULL }, c = { 3, NULL, NULL };
	node *head = NULL;
	LIST_PUSH(head, &a);
	assert_int_equal(ids(head), 1);
	LIST_PUSH(head, &b);
	LIST_PUSH(head, &c);
	assert_int_equal(ids(head), 321);
}

static void test_unlink_anywhere_keeps_the_rest(void **state)
{
	node n[4] = { { 1, NULL, NULL }, { 2, NULL, NULL }, { 3, NULL, NULL },
	              { 4, NULL, NULL } };
	node *head = NULL;
	for (int i = 0; i < 4; i++)
		LIST_PUSH(head, &n[i]);
	assert_int_equal(ids(head), 4321);
	LIST_UNLINK(head, &n[3]);      /* the front */
	assert_int_equal(ids(head), 321);
	assert_null(n[3].prev);
	assert_null(n[3].next);
	LIST_UNLINK(head, &n[1]);      /* the middle */
	assert_int_equal(ids(head), 31);
	assert_null(n[1].prev);
	assert_null(n[1].next);
	LIST_UNLINK(head, &n[0]);      /* the end */
	assert_int_equal(ids(head), 3);
	LIST_UNLINK(head, &n[2]);      /* the last one */
	assert_null(head);
	LIST_PUSH(head, &n[1]);        /* an unlinked object goes on again */
	assert_int_equal(ids(head), 2);
}

/* The loop the proxy's drain and the admin API's close run: the next
 * object is saved, the current one unlinked (and freed, in the daemon). */
static void test_unlink_while_walking(void **state)
{
	node n[5];
	node *head = NULL;
	for (int i = 0; i < 5; i++) {
		n[i] = (node){ i + 1, NULL, NULL };
		LIST_PUSH(head, &n[i]);
	}
	for (node *x = head, *next; x; x = next) {
		next = x->next;
		if (x->id % 2)
			LIST_UNLINK(head, x);
	}
	assert_int_equal(ids(head), 42);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_push_puts_first),
		cmocka_unit_test(test_unlink_anywhere_keeps_the_rest),
		cmocka_unit_test(test_unlink_while_walking),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
