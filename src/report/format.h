/* Number formatting shared by every text output of report and compress:
 * counts with thousands separators, percentages with 2 decimals ("%.2f%%"). */
#ifndef SFP_REPORT_FORMAT_H
#define SFP_REPORT_FORMAT_H

#include <stddef.h>
#include <stdint.h>

/* 1234567 -> "1,234,567" into buf; returns buf. */
const char *report_group3(int64_t v, char *buf, size_t size);

#endif
