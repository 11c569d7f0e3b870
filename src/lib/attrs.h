/*
 * attrs.h: compiler attributes used across Postern.
 */
#ifndef POSTERN_ATTRS_H
#define POSTERN_ATTRS_H

#define ATTR_PRINTF(f, a)	__attribute__((format(printf, f, a)))
#define ATTR_NORETURN		__attribute__((noreturn))
#define ATTR_WARN_UNUSED	__attribute__((warn_unused_result))
#define ATTR_UNUSED		__attribute__((unused))
#define ATTR_COLD		__attribute__((cold))
#define ATTR_FALLTHROUGH	__attribute__((fallthrough))

#define N_ELEMENTS(a)		(sizeof(a) / sizeof((a)[0]))

#endif
