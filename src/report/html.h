/* Building HTML pages in a growing buffer (sfp_buf_t): the helpers the pages
 * of detect --html and report --html share. */
#ifndef SFP_HTML_H
#define SFP_HTML_H

#include "util/util.h"

void html_puts(sfp_buf_t *b, const char *s);
/* Short fixed texts only (under 512 bytes); a longer one fails the buffer. */
#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
void html_printf(sfp_buf_t *b, const char *fmt, ...);
/* Text from outside for element content and quoted attribute values: & < > "
 * ' as entities, control characters and invalid UTF-8 as U+FFFD. */
void html_escape(sfp_buf_t *b, const char *text);
/* The same for the first n bytes of text (at most up to its NUL). */
void html_escape_n(sfp_buf_t *b, const char *text, size_t n);

#endif
