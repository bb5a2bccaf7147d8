/* HTML building helpers shared by the pages (html.h). */
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "report/html.h"

void html_puts(sfp_buf_t *b, const char *s)
{
    sfp_buf_append(b, s, strlen(s));
}

void html_printf(sfp_buf_t *b, const char *fmt, ...)
{
    char small[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof small) {
        b->failed = true; /* only short fixed texts go through here */
        return;
    }
    sfp_buf_append(b, small, (size_t)n);
}

/* Length of the valid UTF-8 sequence at s (1 to 4), 0 when invalid. */
static int utf8_length(const unsigned char *s)
{
    int n = s[0] >= 0xF0 && s[0] <= 0xF4 ? 4 : s[0] >= 0xE0 ? 3 : s[0] >= 0xC2 && s[0] <= 0xDF ? 2 : 0;
    if (s[0] >= 0xF5) n = 0;
    for (int i = 1; i < n; i++)
        if ((s[i] & 0xC0) != 0x80) return 0;
    if (n == 3 && ((s[0] == 0xE0 && s[1] < 0xA0) || (s[0] == 0xED && s[1] >= 0xA0))) return 0; /* overlong, surrogate */
    if (n == 4 && ((s[0] == 0xF0 && s[1] < 0x90) || (s[0] == 0xF4 && s[1] >= 0x90))) return 0; /* overlong, > U+10FFFF */
    return n;
}

void html_escape_n(sfp_buf_t *b, const char *text, size_t n)
{
    const unsigned char *s = (const unsigned char *)text, *end = s + n;
    while (s < end && *s) {
        const char *entity = *s == '&' ? "&amp;" : *s == '<' ? "&lt;" : *s == '>' ? "&gt;"
                           : *s == '"' ? "&quot;" : *s == '\'' ? "&#39;" : NULL;
        if (entity) {
            html_puts(b, entity);
            s++;
        } else if (*s < 0x20 || *s == 0x7F) {
            html_puts(b, "&#xFFFD;");
            s++;
        } else if (*s < 0x80) {
            sfp_buf_append(b, s++, 1);
        } else {
            int len = utf8_length(s);
            if (len == 0 || len > end - s) {
                html_puts(b, "&#xFFFD;");
                s++;
            } else {
                sfp_buf_append(b, s, (size_t)len);
                s += len;
            }
        }
    }
}

void html_escape(sfp_buf_t *b, const char *text)
{
    html_escape_n(b, text, strlen(text));
}
