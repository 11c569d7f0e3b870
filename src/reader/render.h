/*
 * render.h: HTML mail as readable text, through a maintained renderer
 * from Debian (w3m, else lynx) run without a shell, with a bounded time
 * and output; the plain tag stripper of text.h only when neither is
 * installed.
 */
#ifndef POSTERN_READER_RENDER_H
#define POSTERN_READER_RENDER_H

#include <stdbool.h>
#include <stddef.h>

#include "lib/attrs.h"

struct buf;

enum rd_render_rc {
	RD_RENDERED = 0,	/* by the renderer */
	RD_NO_RENDERER = 1,	/* none installed: the caller strips tags */
	RD_RENDER_FAILED = -1,	/* it failed (why): the caller strips */
};

/* Renders html (len octets of UTF-8) into out with the first renderer
 * found in $PATH.  Nothing is appended to out unless RD_RENDERED. */
enum rd_render_rc rd_render_html(const char *html, size_t len,
	    struct buf *out, char *why, size_t whysize);

/* Off: rd_render_html runs no program and says RD_NO_RENDERER (for
 * the fuzz target). */
void	rd_render_set_external(bool on);

/* The path of program name in $PATH into out, if executable.  0 or -1. */
int	rd_find_program(const char *name, char *out, size_t outsize)
	    ATTR_WARN_UNUSED;

#endif
