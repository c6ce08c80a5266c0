/* list.h - intrusive doubly linked lists: an object that carries its own
 * <prev> and <next> pointers is on a list headed by a pointer to its first
 * object. Pushing to the front and unlinking any object cost O(1) and
 * allocate nothing, which is what the connection lists of the proxy and
 * the admin API, the controller's waiting commands and the resolver's
 * running lookups need. Macros, so that any struct with prev and next
 * members can be on a list without a container_of cast.
 *
 * Both macros evaluate <head> and <n> more than once: pass plain lvalues
 * (a variable, a member), never an expression with a side effect. */
#ifndef CANARYD_LIST_H
#define CANARYD_LIST_H

/* Puts <n>, on no list, first on the list headed by <head>. */
#define LIST_PUSH(head, n)                       \
	do {                                     \
		(n)->prev = NULL;                \
		(n)->next = (head);              \
		if (head)                        \
			(head)->prev = (n);      \
		(head) = (n);                    \
	} while (0)

/* Takes <n> off the list headed by <head> (which it must be on) and
 * leaves its prev and next NULL. The objects it linked stay valid: a
 * loop that saved n->next before the call may go on with it. */
#define LIST_UNLINK(head, n)                             \
	do {                                             \
		if ((n)->prev)                           \
			(n)->prev->next = (n)->next;     \
		else                                     \
			(head) = (n)->next;              \
		if ((n)->next)                           \
			(n)->next->prev = (n)->prev;     \
		(n)->prev = (n)->next = NULL;            \
	} while (0)

#endif
